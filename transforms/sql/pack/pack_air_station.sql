-- Pack rows of the air stations and the year-to-date statistics (issue 9 items 4 and 7).
-- air.station: one row per station and day (dimension = site_id; assessment and micro-stations,
-- marked), the daily values as the national platform publishes them: integers in µg/m³, CO to
-- 0.1 mg/m³, rounded half-even (GB/T 8170); the exact means stay in the station tables.
-- air.ytd: one row per statistic and day (dimension = statistic), published as the national
-- reports do (integers; CO to 0.1), the unrounded value and its annual-validity flag in details.
insert into kpi.pack_values
with
station as (
    -- the exact decimal means: half-even on a double would round 0.65 (0.6500000000000000222)
    select
        k.* exclude (
            k.pm25_ugm3, k.pm10_ugm3, k.so2_ugm3, k.no2_ugm3, k.co_mgm3, k.o3_8h_max_ugm3, k.o3_1h_max_ugm3
        ),
        s.pm25_ugm3, s.pm10_ugm3, s.so2_ugm3, s.no2_ugm3, s.co_mgm3, s.o3_8h_max_ugm3,
        s.o3_1h_max_ugm3, s.count_hours_pm25, s.count_hours_pm10, s.count_hours_so2,
        s.count_hours_no2, s.count_hours_co, s.count_hours_o3, s.count_o3_8h_windows
    from kpi.air_daily_station as k
    inner join int.air_daily_station as s using (site_id, local_date)
    where k.local_date between $start_date and $end_date
),

annual as (
    select *
    from kpi.air_annual
    where local_date between $start_date and $end_date
),

ytd as (
    select a.local_date, u.*
    from annual as a
    cross join lateral (
        values
        ('pm25_mean', a.pm25_ytd_mean_ugm3, 0, 'µg/m³', a.count_valid_days_pm25, a.pm25_year_valid),
        ('pm25_p95', a.pm25_p95_ugm3, 0, 'µg/m³', a.count_valid_days_pm25, a.pm25_year_valid),
        ('pm10_mean', a.pm10_ytd_mean_ugm3, 0, 'µg/m³', a.count_valid_days_pm10, a.pm10_year_valid),
        ('pm10_p95', a.pm10_p95_ugm3, 0, 'µg/m³', a.count_valid_days_pm10, a.pm10_year_valid),
        ('so2_mean', a.so2_ytd_mean_ugm3, 0, 'µg/m³', a.count_valid_days_so2, a.so2_year_valid),
        ('so2_p98', a.so2_p98_ugm3, 0, 'µg/m³', a.count_valid_days_so2, a.so2_year_valid),
        ('no2_mean', a.no2_ytd_mean_ugm3, 0, 'µg/m³', a.count_valid_days_no2, a.no2_year_valid),
        ('no2_p98', a.no2_p98_ugm3, 0, 'µg/m³', a.count_valid_days_no2, a.no2_year_valid),
        ('co_p95', a.co_p95_mgm3, 1, 'mg/m³', a.count_valid_days_co, a.co_year_valid),
        ('o3_8h_p90', a.o3_8h_p90_ugm3, 0, 'µg/m³', a.count_valid_days_o3_8h, a.o3_8h_year_valid)
    ) as u (statistic, exact, digits, unit, valid_days, year_valid)
)

select
    'air.station' as kpi_id,
    local_date,
    site_id as dimension,
    aqi::double as value,
    category_zh as value_text,
    'AQI' as unit,
    null::double as target,
    kpi_status('air', local_date, $as_of_date::date, coverage_pct) as status,
    coverage_pct,
    json_object(
        'is_assessment', is_assessment,
        'rule_set', rule_set,
        'pm25_ugm3', round_even(pm25_ugm3, 0),
        'pm10_ugm3', round_even(pm10_ugm3, 0),
        'so2_ugm3', round_even(so2_ugm3, 0),
        'no2_ugm3', round_even(no2_ugm3, 0),
        'co_mgm3', round_even(co_mgm3, 1),
        'o3_8h_max_ugm3', round_even(o3_8h_max_ugm3, 0),
        'o3_1h_max_ugm3', round_even(o3_1h_max_ugm3, 0),
        'aqi_level', aqi_level,
        'category_en', category_en,
        'primary_pollutants', primary_pollutants,
        'is_valid_day', is_valid_day,
        'valid', json_object(
            'pm25', pm25_ugm3 is not null, 'pm10', pm10_ugm3 is not null,
            'so2', so2_ugm3 is not null, 'no2', no2_ugm3 is not null,
            'co', co_mgm3 is not null, 'o3_8h', o3_8h_max_ugm3 is not null,
            'o3_1h', o3_1h_max_ugm3 is not null
        ),
        'hours_used', json_object(
            'pm25', count_hours_pm25, 'pm10', count_hours_pm10, 'so2', count_hours_so2,
            'no2', count_hours_no2, 'co', count_hours_co, 'o3', count_hours_o3,
            'o3_8h_windows', count_o3_8h_windows
        )
    ) as details,
    now() as computed_at
from station

union all

select
    'air.ytd',
    local_date,
    statistic,
    round_even(exact, digits),
    null,
    unit,
    null,
    -- a year-to-date statistic is final when the year so far is (air_annual.status)
    kpi_status('air', local_date, $as_of_date::date, 100.0),
    null,
    json_object(
        'exact', round(exact, 6),
        'valid_days', valid_days,
        'year_valid', year_valid,
        'rule', 'GB 3095-2012 Table 4: >= 324 days, >= 27 per month (25 in February)'
    ),
    now()
from ytd;
