-- KPI pack rows of a date range, optionally one KPI (id or id prefix with a dot) and a set of
-- dimensions; newest day first, county before districts and sites.
with pack as (
    select * from kpi.pack_values
)

select
    kpi_id, local_date, dimension, value, value_text, unit, target, status, coverage_pct,
    details, computed_at
from pack
where
    local_date between $start_date and $end_date
    and ($kpi_id is null or kpi_id = $kpi_id or starts_with(kpi_id, $kpi_id || '.'))
    and ($dimensions is null or list_contains($dimensions, dimension))
order by local_date desc, kpi_id asc, dimension != 'county', dimension asc
limit $limit offset $offset;
