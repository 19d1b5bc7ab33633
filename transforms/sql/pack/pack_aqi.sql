-- Pack rows of the air marts: air.aqi, air.pm25, air.good_days_ratio (county).
insert into kpi.pack_values
with
daily as (
    select *
    from kpi.air_daily
    where local_date between $start_date and $end_date
),

good_days as (
    select *
    from kpi.air_good_days
    where local_date between $start_date and $end_date
),

annual as (
    select *
    from kpi.air_annual
    where local_date between $start_date and $end_date
)

select
    'air.aqi' as kpi_id,
    local_date,
    'county' as dimension,
    aqi::double as value,
    category_zh as value_text,
    'AQI' as unit,
    null::double as target,
    kpi_status('air', local_date, $as_of_date::date, coverage_pct) as status,
    coverage_pct,
    json_object(
        'rule_set', rule_set,
        'aqi_level', aqi_level,
        'level_zh', level_zh,
        'category_zh', category_zh,
        'category_en', category_en,
        'primary_pollutants', primary_pollutants,
        'is_valid_day', is_valid_day,
        'is_good_day', is_good_day,
        'excluded_missing_pollutant', excluded_missing_pollutant,
        'count_assessment_stations', count_assessment_stations
    ) as details,
    now() as computed_at
from daily

union all

-- Published as the integer concentration the IAQI uses (GB/T 8170 half-even, HJ 633),
-- the unrounded mean and the year-to-date statistics (GB 3095 / HJ 663) go in the details.
select
    'air.pm25',
    d.local_date,
    'county',
    round_even(d.pm25_ugm3, 0),
    null,
    'µg/m³',
    null,
    kpi_status('air', d.local_date, $as_of_date::date, d.coverage_pct),
    d.coverage_pct,
    json_object(
        'rule_set', d.rule_set,
        'averaging', '24h mean of the assessment stations',
        'daily_mean_unrounded_ugm3', round(d.pm25_ugm3, 4),
        'ytd_mean_ugm3', round(a.pm25_ytd_mean_ugm3, 4),
        'ytd_p95_ugm3', round(a.pm25_p95_ugm3, 4),
        'ytd_valid_days', a.count_valid_days_pm25,
        'ytd_year_valid', a.pm25_year_valid,
        'pm10_ytd_mean_ugm3', round(a.pm10_ytd_mean_ugm3, 4),
        'pm10_ytd_p95_ugm3', round(a.pm10_p95_ugm3, 4)
    ),
    now()
from daily as d
left join annual as a on d.local_date = a.local_date

union all

select
    'air.good_days_ratio',
    local_date,
    'county',
    ytd_ratio_pct::double,
    ytd_good_days || '/' || ytd_valid_days,
    '%',
    coalesce(pack_target('air.good_days_ratio', local_date), target_pct::double),
    kpi_status('air', local_date, $as_of_date::date, coverage_pct),
    coverage_pct,
    json_object(
        'mtd_good_days', mtd_good_days,
        'mtd_valid_days', mtd_valid_days,
        'mtd_ratio_pct', mtd_ratio_pct::double,
        'ytd_good_days', ytd_good_days,
        'ytd_valid_days', ytd_valid_days,
        'ytd_ratio_pct', ytd_ratio_pct::double,
        'ytd_excluded_days', ytd_excluded_days,
        'remaining_nongood_budget_days', remaining_nongood_budget_days,
        'target_reachable', target_reachable
    ),
    now()
from good_days;
