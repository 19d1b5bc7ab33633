-- kpi.air_daily_station: one row per (air site, local_date) of $start_date .. $end_date:
-- each station's own daily AQI. Micro-stations appear here (hot-spot monitoring) but never in
-- the county value of air_daily.
delete from kpi.air_daily_station where local_date between $start_date and $end_date;

insert into kpi.air_daily_station
with station as (
    select *
    from int.air_daily_station
    where local_date between $start_date and $end_date
),

aqi as (
    select *
    from int.air_aqi
    where grain = 'day' and scope <> 'county' and local_date between $start_date and $end_date
)

select
    s.site_id,
    s.local_date,
    s.rule_set,
    s.is_assessment,
    s.pm25_ugm3::double,
    s.pm10_ugm3::double,
    s.so2_ugm3::double,
    s.no2_ugm3::double,
    s.co_mgm3::double,
    s.o3_8h_max_ugm3::double,
    s.o3_1h_max_ugm3::double,
    a.aqi,
    a.aqi_level,
    a.category_zh,
    a.category_en,
    a.primary_pollutants,
    a.aqi is not null,
    coalesce(a.is_good, false),
    coalesce(a.excluded_missing_pollutant, false),
    s.coverage_pct,
    kpi_status('air', s.local_date, $as_of_date, s.coverage_pct),
    $computed_at
from station as s
left join aqi as a on s.site_id = a.scope and s.local_date = a.local_date;
