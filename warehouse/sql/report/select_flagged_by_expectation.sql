-- Flagged readings of a load run per feed and expectation (device flags grouped as one).
with runs as (
    select validation_run_id
    from dq.validation_runs
    where load_run_id = $load_run_id
)

select
    f.feed,
    case
        when f.expectation like 'device_flag:%' then 'device_flag'
        else f.expectation
    end as expectation,
    count(distinct(f.site_id, f.device_id, f.lane, f.observed_at)) as readings
from dq.flagged_readings as f
semi join runs as r on f.validation_run_id = r.validation_run_id
group by all
order by f.feed asc, readings desc, expectation asc;
