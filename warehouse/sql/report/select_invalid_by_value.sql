-- What a load run's flags invalidated, per feed and value column, and why: readings whose value
-- a value-level check invalidated (column_name = the value column) and readings invalid as a
-- whole (column_name = '*'). Rows with expectation null are the per-column totals (a reading
-- that failed two checks on one value counts once there).
with runs as (
    select validation_run_id
    from dq.validation_runs
    where load_run_id = $load_run_id
),

per_value as (
    select
        f.feed,
        f.site_id,
        f.device_id,
        f.lane,
        f.observed_at,
        case
            when f.expectation like 'device_flag:%' then 'device_flag'
            else f.expectation
        end as expectation,
        unnest(
            case when f.scope = 'reading' then ['*'] else f.invalidated_columns end
        ) as column_name
    from dq.flagged_readings as f
    semi join runs as r on f.validation_run_id = r.validation_run_id
)

select
    feed,
    column_name,
    expectation,
    count(distinct(site_id, device_id, lane, observed_at)) as readings
from per_value
group by grouping sets ((feed, column_name, expectation), (feed, column_name))
order by feed asc, column_name = '*', column_name asc, expectation asc nulls first, readings desc;
