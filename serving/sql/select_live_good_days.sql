-- The good-days ratio year to date with the open day not counted, and the county AQI of the
-- open day so far, as of the last intraday run.
select
    local_date as open_day,
    year,
    counted_through,
    ytd_good_days as good_days_so_far,
    ytd_valid_days as valid_days_so_far,
    ytd_ratio_pct as ratio_pct,
    ytd_excluded_days as excluded_days_so_far,
    target_pct,
    remaining_nongood_budget_days,
    days_not_counted,
    is_day_counted as open_day_counted,
    hours_so_far,
    county_hours_valid,
    aqi_so_far,
    aqi_level_so_far,
    category_zh_so_far,
    category_en_so_far,
    primary_pollutants_so_far,
    is_good_so_far,
    last_hour_end_local,
    last_hour_aqi,
    'provisional' as status,
    data_until,
    computed_at
from kpi.intraday_air_day
order by local_date desc
limit 1;
