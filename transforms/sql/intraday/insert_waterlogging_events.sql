-- Warehouse: kpi.intraday_waterlogging_events of $open_day from the scratch computation (intraday_input).
insert into kpi.intraday_waterlogging_events by name
select
    *,
    $open_day as open_day,
    true as is_provisional,
    $data_until as data_until,
    $computed_at as computed_at
from intraday_input
