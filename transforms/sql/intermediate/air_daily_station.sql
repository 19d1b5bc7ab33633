-- int.air_daily_station: one row per (air site, local_date) for $start_date .. $end_date.
-- 24h means of the natural day's hourly values (hours stamped D 01:00 .. D+1 00:00), valid with
-- >= min_hours_per_day values (GB 3095 Table 4). Daily max 8h O3 (HJ 663-2013, standards.md 2):
-- the highest of the 8h means ending o3_8h_first_end_hour (08:00) .. 24:00 of D, 17 windows; the
-- windows ending 01:00 .. 07:00 reach into D-1 and never count. Valid with >= min_o3_8h_per_day
-- (14) valid windows; with fewer, still valid when the highest window, rounded as published
-- (GB/T 8170, integer), exceeds o3_8h_valid_above_ugm3 (160, GB 3095 O3 8h Class II limit).
-- Daily max 1h O3 valid with >= min_hours_o3_1h_max hours.
delete from int.air_daily_station where local_date between $start_date and $end_date;

insert into int.air_daily_station
with hourly as (
    select *
    from int.air_hourly_station
    where local_date between $start_date and $end_date
),

moving as (
    select *
    from int.air_moving_station
    where local_date between $start_date and $end_date
),

rule_sets as (
    select * from int.air_rule_sets
),

day_hours as (
    select
        site_id,
        local_date,
        any_value(rule_set) as rule_set,
        bool_or(is_assessment) as is_assessment,
        sum(pm25_ugm3) as s_pm25, count(pm25_ugm3) as n_pm25,
        sum(pm10_ugm3) as s_pm10, count(pm10_ugm3) as n_pm10,
        sum(so2_ugm3) as s_so2, count(so2_ugm3) as n_so2,
        sum(no2_ugm3) as s_no2, count(no2_ugm3) as n_no2,
        sum(co_mgm3) as s_co, count(co_mgm3) as n_co,
        max(o3_ugm3) as o3_1h_max, count(o3_ugm3) as n_o3,
        count(*) as n_hours
    from hourly
    group by site_id, local_date
),

day_o3_8h as (
    select
        m.site_id,
        m.local_date,
        max(m.o3_8h_ugm3) as o3_8h_max,
        count(m.o3_8h_ugm3) as n_windows
    from moving as m
    inner join rule_sets as r on m.rule_set = r.rule_set
    where m.hour_end_local >= m.local_date + to_hours(r.o3_8h_first_end_hour)
    group by m.site_id, m.local_date
)

select
    d.site_id,
    d.local_date,
    d.rule_set,
    d.is_assessment,
    case when d.n_pm25 >= r.min_hours_per_day then air_mean6(d.s_pm25, d.n_pm25) end,
    case when d.n_pm10 >= r.min_hours_per_day then air_mean6(d.s_pm10, d.n_pm10) end,
    case when d.n_so2 >= r.min_hours_per_day then air_mean6(d.s_so2, d.n_so2) end,
    case when d.n_no2 >= r.min_hours_per_day then air_mean6(d.s_no2, d.n_no2) end,
    case when d.n_co >= r.min_hours_per_day then air_mean6(d.s_co, d.n_co) end,
    case
        when coalesce(o.n_windows, 0) >= r.min_o3_8h_per_day then o.o3_8h_max
        -- too few windows: an exceedance among those there are still decides the day (HJ 663)
        when air_round(o.o3_8h_max, 0) > r.o3_8h_valid_above_ugm3 then o.o3_8h_max
    end,
    case when d.n_o3 >= r.min_hours_o3_1h_max then d.o3_1h_max end,
    d.n_pm25,
    d.n_pm10,
    d.n_so2,
    d.n_no2,
    d.n_co,
    d.n_o3,
    coalesce(o.n_windows, 0),
    d.n_hours,
    d.n_pm25 + d.n_pm10 + d.n_so2 + d.n_no2 + d.n_co + d.n_o3,
    round(100.0 * (d.n_pm25 + d.n_pm10 + d.n_so2 + d.n_no2 + d.n_co + d.n_o3) / (6 * d.n_hours), 1)
from day_hours as d
inner join rule_sets as r on d.rule_set = r.rule_set
left join day_o3_8h as o on d.site_id = o.site_id and d.local_date = o.local_date;
