-- int.air_hourly_county: one row per hour_end of the days $start_date .. $end_date.
-- County hourly (and moving) concentrations = mean of the assessment stations' valid values,
-- with the same station-share rule as the daily county value.
delete from int.air_hourly_county where local_date between $start_date and $end_date;

insert into int.air_hourly_county
with hourly as (
    select h.*, m.o3_8h_ugm3, m.pm25_24h_ugm3, m.pm10_24h_ugm3, m.so2_24h_ugm3
    from int.air_hourly_station as h
    inner join int.air_moving_station as m
        on h.site_id = m.site_id and h.hour_end = m.hour_end
    where h.local_date between $start_date and $end_date and h.is_assessment
),

assessment as (
    select count(*)::integer as n_stations
    from core.dim_site
    where feed = 'air' and coalesce(is_assessment, false)
),

rule_sets as (
    select * from int.air_rule_sets
),

hours as (
    select unnest(generate_series(
        $start_date::timestamp + interval 1 hour,
        ($end_date + 1)::timestamp,
        interval 1 hour
    )) as hour_end_local
),

hour_rules as (
    select
        h.hour_end_local,
        (h.hour_end_local - interval 1 hour)::date as local_date,
        r.rule_set,
        a.n_stations,
        greatest(1, ceil(r.county_min_station_share * a.n_stations))::integer as n_required
    from hours as h
    asof join rule_sets as r on (h.hour_end_local - interval 1 hour)::date >= r.applies_from
    cross join assessment as a
),

agg as (
    select
        hour_end_local,
        sum(pm25_ugm3) as s_pm25, count(pm25_ugm3) as n_pm25,
        sum(pm10_ugm3) as s_pm10, count(pm10_ugm3) as n_pm10,
        sum(so2_ugm3) as s_so2, count(so2_ugm3) as n_so2,
        sum(no2_ugm3) as s_no2, count(no2_ugm3) as n_no2,
        sum(co_mgm3) as s_co, count(co_mgm3) as n_co,
        sum(o3_ugm3) as s_o3, count(o3_ugm3) as n_o3,
        sum(o3_8h_ugm3) as s_o3_8h, count(o3_8h_ugm3) as n_o3_8h,
        sum(pm25_24h_ugm3) as s_pm25_24h, count(pm25_24h_ugm3) as n_pm25_24h,
        sum(pm10_24h_ugm3) as s_pm10_24h, count(pm10_24h_ugm3) as n_pm10_24h,
        sum(so2_24h_ugm3) as s_so2_24h, count(so2_24h_ugm3) as n_so2_24h
    from hourly
    group by hour_end_local
)

select
    h.local_date,
    timezone($tz, h.hour_end_local),
    h.hour_end_local,
    h.rule_set,
    h.n_stations,
    h.n_required,
    case when a.n_pm25 >= h.n_required then air_mean6(a.s_pm25, a.n_pm25) end,
    case when a.n_pm10 >= h.n_required then air_mean6(a.s_pm10, a.n_pm10) end,
    case when a.n_so2 >= h.n_required then air_mean6(a.s_so2, a.n_so2) end,
    case when a.n_no2 >= h.n_required then air_mean6(a.s_no2, a.n_no2) end,
    case when a.n_co >= h.n_required then air_mean6(a.s_co, a.n_co) end,
    case when a.n_o3 >= h.n_required then air_mean6(a.s_o3, a.n_o3) end,
    case when a.n_o3_8h >= h.n_required then air_mean6(a.s_o3_8h, a.n_o3_8h) end,
    case when a.n_pm25_24h >= h.n_required then air_mean6(a.s_pm25_24h, a.n_pm25_24h) end,
    case when a.n_pm10_24h >= h.n_required then air_mean6(a.s_pm10_24h, a.n_pm10_24h) end,
    case when a.n_so2_24h >= h.n_required then air_mean6(a.s_so2_24h, a.n_so2_24h) end,
    case
        when h.n_stations = 0 then 0.0
        else round(
            100.0 * (
                coalesce(a.n_pm25, 0) + coalesce(a.n_pm10, 0) + coalesce(a.n_so2, 0)
                + coalesce(a.n_no2, 0) + coalesce(a.n_co, 0) + coalesce(a.n_o3, 0)
            ) / (6 * h.n_stations),
            1
        )
    end
from hour_rules as h
left join agg as a on h.hour_end_local = a.hour_end_local;
