-- A day's pack rows for `citypipe kpis`, optionally only KPI ids starting with $prefix, in a
-- stable order (county first).
select
    kpi_id,
    dimension,
    value,
    value_text,
    unit,
    target,
    status,
    coverage_pct,
    details,
    computed_at
from kpi.pack_values
where local_date = $day and ($prefix::varchar is null or starts_with(kpi_id, $prefix::varchar))
order by kpi_id asc, dimension = 'county' desc, dimension;
