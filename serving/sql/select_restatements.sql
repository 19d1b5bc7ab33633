-- Changes of published KPI values (kpi.restatements) for days in a range, newest first.
with restatements as (
    select * from kpi.restatements
)

select
    kpi_id, local_date, dimension, old_value, new_value, old_value_text, new_value_text,
    old_status, restated_at, reason
from restatements
where
    local_date between $start_date and $end_date
    and ($kpi_id is null or kpi_id = $kpi_id or starts_with(kpi_id, $kpi_id || '.'))
order by restated_at desc, kpi_id asc, local_date desc, dimension asc
limit $limit offset $offset;
