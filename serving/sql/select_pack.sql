-- The whole KPI pack of one day, as `citypipe kpis` orders it.
with pack as (
    select * from kpi.pack_values
)

select
    kpi_id, local_date, dimension, value, value_text, unit, target, status, coverage_pct,
    details, computed_at
from pack
where local_date = $local_date
order by kpi_id asc, dimension != 'county', dimension asc;
