-- Warehouse: kpi.intraday_waterlogging_depths of $open_day from the scratch computation (intraday_input).
insert into kpi.intraday_waterlogging_depths by name
select
    *,
    $open_day as open_day,
    true as is_provisional,
    $data_until as data_until,
    $computed_at as computed_at
from intraday_input
