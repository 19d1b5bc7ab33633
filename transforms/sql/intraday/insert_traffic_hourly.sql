-- Warehouse: kpi.intraday_traffic_hourly from the scratch computation (registered as intraday_input).
insert into kpi.intraday_traffic_hourly by name
select
    *,
    true as is_provisional,
    $data_until as data_until,
    $computed_at as computed_at
from intraday_input
