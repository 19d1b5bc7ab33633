-- kpi.air_daily: one row per local_date of $start_date .. $end_date: the county's daily air
-- quality (HJ 633 daily AQI from the mean of the assessment stations, HJ 663). A valid day has a
-- published AQI; a good day has AQI <= good_max_aqi (100). status from kpi_status()
-- (status_macros.sql).
delete from kpi.air_daily where local_date between $start_date and $end_date;

insert into kpi.air_daily
with county as (
    select *
    from int.air_daily_county
    where local_date between $start_date and $end_date
),

aqi as (
    select *
    from int.air_aqi
    where grain = 'day' and scope = 'county' and local_date between $start_date and $end_date
)

select
    c.local_date,
    c.rule_set,
    c.pm25_ugm3::double,
    c.pm10_ugm3::double,
    c.so2_ugm3::double,
    c.no2_ugm3::double,
    c.co_mgm3::double,
    c.o3_8h_max_ugm3::double,
    c.o3_1h_max_ugm3::double,
    a.iaqi_so2,
    a.iaqi_no2,
    a.iaqi_pm10,
    a.iaqi_co,
    a.iaqi_o3_1h,
    a.iaqi_o3_8h,
    a.iaqi_pm25,
    a.aqi,
    a.aqi_available_max,
    a.aqi_level,
    a.level_zh,
    a.category_zh,
    a.category_en,
    a.colour_rgb,
    a.primary_pollutants,
    a.aqi is not null as is_valid_day,
    coalesce(a.is_good, false) as is_good_day,
    coalesce(a.excluded_missing_pollutant, false),
    coalesce(a.count_required, 0),
    coalesce(a.count_available, 0),
    c.count_assessment_stations,
    c.coverage_pct,
    kpi_status('air', c.local_date, $as_of_date, c.coverage_pct),
    $computed_at
from county as c
left join aqi as a on c.local_date = a.local_date;
