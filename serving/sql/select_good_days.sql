-- The good-days ratio and the remaining non-good-day budget of the year, as of the newest
-- computed day on or before $as_of_date (null: the newest).
with good_days as (
    select * from kpi.air_good_days
)

select
    local_date, year, ytd_good_days, ytd_valid_days, ytd_ratio_pct, ytd_excluded_days,
    ytd_nongood_days, ytd_days_elapsed, remaining_days_in_year, target_pct, ytd_meets_target,
    remaining_nongood_budget_days, target_reachable, mtd_good_days, mtd_valid_days,
    mtd_ratio_pct, coverage_pct, status, computed_at
from good_days
where $as_of_date is null or local_date <= $as_of_date
order by local_date desc
limit 1;
