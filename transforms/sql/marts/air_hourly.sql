-- kpi.air_hourly: one row per (scope, hour_end) of the days $start_date .. $end_date,
-- scope = 'county' or an air site_id: the real-time AQI under the hour's rule set. The status of
-- an hour is the status of its scope's day (run after air_daily and air_daily_station).
delete from kpi.air_hourly where local_date between $start_date and $end_date;

insert into kpi.air_hourly
with station as (
    select
        h.site_id as scope, h.hour_end, h.hour_end_local, h.local_date, h.rule_set,
        h.is_assessment,
        h.pm25_ugm3, h.pm10_ugm3, h.so2_ugm3, h.no2_ugm3, h.co_mgm3, h.o3_ugm3,
        m.o3_8h_ugm3, m.pm25_24h_ugm3, m.pm10_24h_ugm3
    from int.air_hourly_station as h
    inner join int.air_moving_station as m
        on h.site_id = m.site_id and h.hour_end = m.hour_end
    where h.local_date between $start_date and $end_date
),

county as (
    select
        'county' as scope, hour_end, hour_end_local, local_date, rule_set,
        true as is_assessment,
        pm25_ugm3, pm10_ugm3, so2_ugm3, no2_ugm3, co_mgm3, o3_ugm3,
        o3_8h_ugm3, pm25_24h_ugm3, pm10_24h_ugm3
    from int.air_hourly_county
    where local_date between $start_date and $end_date
),

day_status as (
    select 'county' as scope, local_date, status
    from kpi.air_daily
    where local_date between $start_date and $end_date
    union all
    select site_id, local_date, status
    from kpi.air_daily_station
    where local_date between $start_date and $end_date
),

aqi as (
    select *
    from int.air_aqi
    where grain = 'hour' and local_date between $start_date and $end_date
),

hours as (
    select * from station
    union all
    select * from county
)

select
    h.scope,
    h.hour_end,
    h.hour_end_local,
    h.local_date,
    h.rule_set,
    h.is_assessment,
    h.pm25_ugm3::double,
    h.pm10_ugm3::double,
    h.so2_ugm3::double,
    h.no2_ugm3::double,
    h.co_mgm3::double,
    h.o3_ugm3::double,
    h.o3_8h_ugm3::double,
    h.pm25_24h_ugm3::double,
    h.pm10_24h_ugm3::double,
    a.aqi,
    a.aqi_available_max,
    a.aqi_level,
    a.category_zh,
    a.category_en,
    a.colour_rgb,
    a.primary_pollutants,
    coalesce(a.excluded_missing_pollutant, false),
    coalesce(s.status, 'provisional'),
    $computed_at
from hours as h
left join aqi as a on h.scope = a.scope and h.hour_end_local = a.period_end_local
left join day_status as s on h.scope = s.scope and h.local_date = s.local_date;
