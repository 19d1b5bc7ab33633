-- int.air_moving_station: one row per (air site, hour_end) of the days $start_date .. $end_date.
-- O3 8-hour moving mean at h = mean of the valid hourly values of the 8 hours ending at h
-- (>= min_hours_per_8h, GB 3095 Table 4); 24-hour moving means of PM2.5, PM10 and SO2 for the
-- 2012 real-time AQI (>= min_hours_per_24h_moving, convention). Windows reach into the day
-- before $start_date, which air_hourly_station rebuilt. Range frames on the instant, so
-- a missing hour never shifts a window.
delete from int.air_moving_station where local_date between $start_date and $end_date;

insert into int.air_moving_station
with hourly as (
    select *
    from int.air_hourly_station
    where local_date between $start_date - 1 and $end_date
),

rule_sets as (
    select rule_set, min_hours_per_8h, min_hours_per_24h_moving from int.air_rule_sets
),

windows as (
    select
        site_id,
        local_date,
        hour_end,
        hour_end_local,
        rule_set,
        is_assessment,
        sum(o3_ugm3) over w8 as s_o3_8h,
        count(o3_ugm3) over w8 as n_o3_8h,
        sum(pm25_ugm3) over w24 as s_pm25_24h,
        count(pm25_ugm3) over w24 as n_pm25_24h,
        sum(pm10_ugm3) over w24 as s_pm10_24h,
        count(pm10_ugm3) over w24 as n_pm10_24h,
        sum(so2_ugm3) over w24 as s_so2_24h,
        count(so2_ugm3) over w24 as n_so2_24h
    from hourly
    window
        w8 as (
            partition by site_id order by hour_end
            range between interval 7 hours preceding and current row
        ),
        w24 as (
            partition by site_id order by hour_end
            range between interval 23 hours preceding and current row
        )
)

select
    w.site_id,
    w.local_date,
    w.hour_end,
    w.hour_end_local,
    w.rule_set,
    w.is_assessment,
    case when w.n_o3_8h >= r.min_hours_per_8h then air_mean6(w.s_o3_8h, w.n_o3_8h) end,
    w.n_o3_8h,
    case
        when w.n_pm25_24h >= r.min_hours_per_24h_moving then air_mean6(w.s_pm25_24h, w.n_pm25_24h)
    end,
    w.n_pm25_24h,
    case
        when w.n_pm10_24h >= r.min_hours_per_24h_moving then air_mean6(w.s_pm10_24h, w.n_pm10_24h)
    end,
    w.n_pm10_24h,
    case
        when w.n_so2_24h >= r.min_hours_per_24h_moving then air_mean6(w.s_so2_24h, w.n_so2_24h)
    end,
    w.n_so2_24h
from windows as w
inner join rule_sets as r on w.rule_set = r.rule_set
where w.local_date between $start_date and $end_date;
