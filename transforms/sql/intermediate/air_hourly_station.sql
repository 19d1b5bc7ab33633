-- int.air_hourly_station: one row per (air site, hour_end) for every hour of the natural days
-- $start_date - 1 .. $end_date (the day before feeds the 8h / 24h moving windows of $start_date).
-- Time convention (docs/kpis_air.md, contract v1): observed_at is the END of the reading's
-- period, so a reading covers (observed_at - period_s, observed_at] and belongs to the hour
-- (h, h+1] that contains that end, stamped h+1: a 1-minute reading stamped 10:00:00 belongs to
-- the hour ending 10:00, like an hourly reading stamped 10:00. Minutes sampled = the union of
-- the minutes the readings with a valid value cover, clipped to the hour (5-minute data:
-- 9 readings = 45 minutes; an hourly reading = 60 minutes). A union, not a sum: overlapping or repeated readings
-- never count a minute twice, so no hour exceeds 60 minutes (issue 7, finding 3).
delete from int.air_hourly_station where local_date between $start_date - 1 and $end_date;

insert into int.air_hourly_station
with obs as (
    select
        site_id,
        observed_at,
        period_s,
        -- validity per pollutant (GB 3095): a value a check invalidated is NA, the reading's
        -- other pollutants still count; is_valid = the reading as a whole counts
        try_cast(if(list_contains(invalid_columns, 'pm25_ugm3'), null, pm25_ugm3) as decimal(18, 3)) as pm25,
        try_cast(if(list_contains(invalid_columns, 'pm10_ugm3'), null, pm10_ugm3) as decimal(18, 3)) as pm10,
        try_cast(if(list_contains(invalid_columns, 'so2_ugm3'), null, so2_ugm3) as decimal(18, 3)) as so2,
        try_cast(if(list_contains(invalid_columns, 'no2_ugm3'), null, no2_ugm3) as decimal(18, 3)) as no2,
        try_cast(if(list_contains(invalid_columns, 'co_mgm3'), null, co_mgm3) as decimal(18, 3)) as co,
        try_cast(if(list_contains(invalid_columns, 'o3_ugm3'), null, o3_ugm3) as decimal(18, 3)) as o3
    from core.obs_air
    where is_valid and local_date between $start_date - 2 and $end_date + 1
),

sites as (
    select site_id, coalesce(is_assessment, false) as is_assessment
    from core.dim_site
    where feed = 'air'
),

rule_sets as (
    select rule_set, applies_from, min_minutes_per_hour from int.air_rule_sets
),

local_obs as (
    select
        site_id,
        period_s,
        pm25, pm10, so2, no2, co, o3,
        -- the last instant the reading covers: its hour and its last minute
        timezone($tz, observed_at) - interval 1 microsecond as covered_until_local,
        greatest(1, period_s // 60)::integer as span
    from obs
),

stamped as (
    select
        site_id,
        period_s,
        pm25, pm10, so2, no2, co, o3,
        date_trunc('hour', covered_until_local) + interval 1 hour as hour_end_local,
        -- one bit per minute of the hour that the reading covers, whatever the number of
        -- devices or readings in that minute
        case
            when period_s >= 3600 then (1::ubigint << 60) - 1
            else
                ((1::ubigint << least(minute(covered_until_local) + 1, span)) - 1)
                << (minute(covered_until_local) + 1 - least(minute(covered_until_local) + 1, span))
        end as minute_mask
    from local_obs
),

per_hour as (
    select
        site_id,
        hour_end_local,
        sum(pm25) as s_pm25, count(pm25) as n_pm25,
        bit_count(coalesce(bit_or(minute_mask) filter (where pm25 is not null), 0)) as b_pm25,
        sum(pm10) as s_pm10, count(pm10) as n_pm10,
        bit_count(coalesce(bit_or(minute_mask) filter (where pm10 is not null), 0)) as b_pm10,
        sum(so2) as s_so2, count(so2) as n_so2,
        bit_count(coalesce(bit_or(minute_mask) filter (where so2 is not null), 0)) as b_so2,
        sum(no2) as s_no2, count(no2) as n_no2,
        bit_count(coalesce(bit_or(minute_mask) filter (where no2 is not null), 0)) as b_no2,
        sum(co) as s_co, count(co) as n_co,
        bit_count(coalesce(bit_or(minute_mask) filter (where co is not null), 0)) as b_co,
        sum(o3) as s_o3, count(o3) as n_o3,
        bit_count(coalesce(bit_or(minute_mask) filter (where o3 is not null), 0)) as b_o3,
        count(*) as count_readings
    from stamped
    group by site_id, hour_end_local
),

per_hour_minutes as (
    select
        *,
        b_pm25 as m_pm25,
        b_pm10 as m_pm10,
        b_so2 as m_so2,
        b_no2 as m_no2,
        b_co as m_co,
        b_o3 as m_o3
    from per_hour
),

hours as (
    select unnest(generate_series(
        ($start_date - 1)::timestamp + interval 1 hour,
        ($end_date + 1)::timestamp,
        interval 1 hour
    )) as hour_end_local
),

grid as (
    select
        s.site_id,
        s.is_assessment,
        h.hour_end_local,
        (h.hour_end_local - interval 1 hour)::date as local_date
    from sites as s
    cross join hours as h
),

grid_rules as (
    select g.*, r.rule_set, r.min_minutes_per_hour
    from grid as g
    asof join rule_sets as r on g.local_date >= r.applies_from
)

select
    g.site_id,
    g.local_date,
    timezone($tz, g.hour_end_local) as hour_end,
    g.hour_end_local,
    g.rule_set,
    g.is_assessment,
    case when p.m_pm25 >= g.min_minutes_per_hour then air_mean6(p.s_pm25, p.n_pm25) end,
    case when p.m_pm10 >= g.min_minutes_per_hour then air_mean6(p.s_pm10, p.n_pm10) end,
    case when p.m_so2 >= g.min_minutes_per_hour then air_mean6(p.s_so2, p.n_so2) end,
    case when p.m_no2 >= g.min_minutes_per_hour then air_mean6(p.s_no2, p.n_no2) end,
    case when p.m_co >= g.min_minutes_per_hour then air_mean6(p.s_co, p.n_co) end,
    case when p.m_o3 >= g.min_minutes_per_hour then air_mean6(p.s_o3, p.n_o3) end,
    coalesce(p.m_pm25, 0),
    coalesce(p.m_pm10, 0),
    coalesce(p.m_so2, 0),
    coalesce(p.m_no2, 0),
    coalesce(p.m_co, 0),
    coalesce(p.m_o3, 0),
    coalesce(p.count_readings, 0)
from grid_rules as g
left join per_hour_minutes as p
    on g.site_id = p.site_id and g.hour_end_local = p.hour_end_local;
