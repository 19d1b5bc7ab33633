-- Warehouse: kpi.intraday_air_day. Each open day (from the scratch day-so-far rows, registered
-- as intraday_input) gets the year-to-date good-days count of the last day the daily run computed
-- before it in the same year (kpi.air_good_days): the open day, and any day after that one, is
-- not counted. A year with no computed day yet counts 0 of 0 (ratio null).
insert into kpi.intraday_air_day by name
select
    s.local_date,
    year(s.local_date)::integer as year,
    g.local_date as counted_through,
    coalesce(g.ytd_good_days, 0) as ytd_good_days,
    coalesce(g.ytd_valid_days, 0) as ytd_valid_days,
    g.ytd_ratio_pct,
    coalesce(g.ytd_excluded_days, 0) as ytd_excluded_days,
    g.target_pct,
    g.remaining_nongood_budget_days,
    (
        s.local_date - coalesce(g.local_date, make_date(year(s.local_date)::bigint, 1, 1) - 1)
    )::integer as days_not_counted,
    false as is_day_counted,
    s.hours_so_far,
    s.county_hours_valid,
    s.aqi_so_far,
    s.aqi_level_so_far,
    s.category_zh_so_far,
    s.category_en_so_far,
    s.primary_pollutants_so_far,
    s.is_good_so_far,
    s.last_hour_end_local,
    s.last_hour_aqi,
    true as is_provisional,
    $data_until as data_until,
    $computed_at as computed_at
from intraday_input as s
asof left join kpi.air_good_days as g
    on year(s.local_date) = g.year and s.local_date > g.local_date
