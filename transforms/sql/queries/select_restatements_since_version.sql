-- The restatements of day $day recorded after lake snapshot $version: rows there now and not
-- then (compared by content, so no clock decides), oldest first.
with restatements_now as (
    select * from kpi.restatements
    where local_date = $day and ($prefix::varchar is null or starts_with(kpi_id, $prefix::varchar))
),

restatements_then as (
    -- SQLFluff does not parse DuckDB's AT clause (it reads `at` as an alias).
    select * from kpi.restatements at (version => $version)  -- noqa: PRS,AL01,AL05,RF04
    where local_date = $day
),

added as (
    select * from restatements_now
    except all
    select * from restatements_then
)

select
    kpi_id,
    dimension,
    old_value,
    new_value,
    old_value_text,
    new_value_text,
    old_status,
    restated_at,
    reason
from added
order by restated_at asc, kpi_id asc, dimension asc;
