-- The restatements a run recorded (its reason is unique per run), in a stable order.
select
    kpi_id,
    local_date,
    dimension,
    old_value,
    new_value,
    old_value_text,
    new_value_text
from kpi.restatements
where reason = $reason
order by local_date, kpi_id, dimension;
