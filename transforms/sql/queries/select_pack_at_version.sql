-- A day's pack rows as they were at lake snapshot $version (time travel), optionally only KPI
-- ids starting with $prefix; the columns and order of select_pack.sql.
with pack_then as (
    -- SQLFluff does not parse DuckDB's AT clause (it reads `at` as an alias).
    select * from kpi.pack_values at (version => $version)  -- noqa: PRS,AL01,AL05,RF04
)

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
from pack_then
where local_date = $day and ($prefix::varchar is null or starts_with(kpi_id, $prefix::varchar))
order by kpi_id asc, dimension = 'county' desc, dimension;
