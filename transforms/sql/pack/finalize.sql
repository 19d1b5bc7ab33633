-- Promote pack rows to final once their day has left the look-back and coverage suffices
-- (ref.kpi_status). Status is not a value: no restatement.
update kpi.kpi_values as v
set status = 'final'
from (
    -- The rule in force on the as-of date, else the feed's first rule (as transforms/status.py).
    select feed,
        coalesce(
            arg_max(lookback_days, valid_from) filter (where valid_from <= $as_of_date),
            arg_min(lookback_days, valid_from)
        ) as lookback_days,
        coalesce(
            arg_max(min_coverage_pct, valid_from) filter (where valid_from <= $as_of_date),
            arg_min(min_coverage_pct, valid_from)
        ) as min_coverage_pct
    from ref.kpi_status
    group by feed
) as r
where
    v.status = 'provisional'
    and r.feed = split_part(v.kpi_id, '.', 1)
    and v.local_date < $as_of_date::date - r.lookback_days::integer
    and v.coverage_pct >= r.min_coverage_pct;
