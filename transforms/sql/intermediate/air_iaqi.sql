-- int.air_iaqi: one row per (grain, scope, period_end_local, AQI input) of $start_date .. $end_date.
-- grain 'day': county and every air site, the daily indicators; grain 'hour': the real-time
-- indicators. Which inputs count, their breakpoint table, rounding digits and the rule above the
-- top breakpoint come from ref.aqi_indicators (per rule set). IAQI = exact integer arithmetic,
-- rounded up (HJ 633 5.1 / standards.md 1.3); a value on a breakpoint gets exactly that IAQI.
delete from int.air_iaqi where local_date between $start_date and $end_date;

insert into int.air_iaqi
with daily as (
    select
        'day' as grain, site_id as scope, local_date, rule_set,
        (local_date + 1)::timestamp as period_end_local,
        so2_ugm3, no2_ugm3, pm10_ugm3, co_mgm3, o3_1h_max_ugm3, o3_8h_max_ugm3, pm25_ugm3
    from int.air_daily_station
    where local_date between $start_date and $end_date
    union all
    select
        'day', 'county', local_date, rule_set, (local_date + 1)::timestamp,
        so2_ugm3, no2_ugm3, pm10_ugm3, co_mgm3, o3_1h_max_ugm3, o3_8h_max_ugm3, pm25_ugm3
    from int.air_daily_county
    where local_date between $start_date and $end_date
),

hourly as (
    select
        'hour' as grain, h.site_id as scope, h.local_date, h.rule_set,
        h.hour_end_local as period_end_local,
        h.so2_ugm3, h.no2_ugm3, h.pm10_ugm3, h.co_mgm3, h.o3_ugm3, h.pm25_ugm3,
        m.pm10_24h_ugm3, m.pm25_24h_ugm3, m.so2_24h_ugm3, m.o3_8h_ugm3
    from int.air_hourly_station as h
    inner join int.air_moving_station as m
        on h.site_id = m.site_id and h.hour_end = m.hour_end
    where h.local_date between $start_date and $end_date
    union all
    select
        'hour', 'county', local_date, rule_set, hour_end_local,
        so2_ugm3, no2_ugm3, pm10_ugm3, co_mgm3, o3_ugm3, pm25_ugm3,
        pm10_24h_ugm3, pm25_24h_ugm3, so2_24h_ugm3, o3_8h_ugm3
    from int.air_hourly_county
    where local_date between $start_date and $end_date
),

indicators as (
    select
        rule_set::varchar as rule_set,
        grain::varchar as grain,
        input::varchar as input,
        label::varchar as label,
        pollutant::varchar as pollutant,
        bp_averaging::varchar as bp_averaging,
        counts_in_aqi::boolean as counts_in_aqi,
        round_digits::integer as round_digits,
        above_top::varchar as above_top,
        above_top_iaqi::integer as above_top_iaqi,
        above_top_input::varchar as above_top_input,
        ordinal::integer as ordinal
    from ref.aqi_indicators
),

breakpoints as (
    select
        rule_set::varchar as rule_set,
        pollutant::varchar as pollutant,
        averaging::varchar as averaging,
        iaqi_lo::integer as iaqi_lo,
        iaqi_hi::integer as iaqi_hi,
        bp_lo::decimal(18, 6) as bp_lo,
        bp_hi::decimal(18, 6) as bp_hi,
        max(bp_hi::decimal(18, 6)) over (partition by rule_set, pollutant, averaging) as bp_top
    from ref.aqi_breakpoints
),

long_values as (
    select
        grain, scope, local_date, rule_set, period_end_local,
        unnest([
            'so2_24h', 'no2_24h', 'pm10_24h', 'co_24h', 'o3_1h_max', 'o3_8h_max', 'pm25_24h'
        ]) as input,
        unnest([
            so2_ugm3, no2_ugm3, pm10_ugm3, co_mgm3, o3_1h_max_ugm3, o3_8h_max_ugm3, pm25_ugm3
        ]) as concentration
    from daily
    union all
    select
        grain, scope, local_date, rule_set, period_end_local,
        unnest([
            'so2_1h', 'no2_1h', 'pm10_1h', 'co_1h', 'o3_1h', 'pm25_1h',
            'pm10_24h_moving', 'pm25_24h_moving', 'so2_24h_moving', 'o3_8h_moving'
        ]) as input,
        unnest([
            so2_ugm3, no2_ugm3, pm10_ugm3, co_mgm3, o3_ugm3, pm25_ugm3,
            pm10_24h_ugm3, pm25_24h_ugm3, so2_24h_ugm3, o3_8h_ugm3
        ]) as concentration
    from hourly
),

used as (
    select
        v.grain, v.scope, v.local_date, v.rule_set, v.period_end_local, v.input,
        i.label, i.ordinal, i.counts_in_aqi, i.pollutant, i.bp_averaging,
        i.above_top, i.above_top_iaqi, i.above_top_input,
        v.concentration,
        -- a (rare) negative mean is read as 0: the IAQI scale starts at 0. (greatest() skips
        -- nulls, so a missing value must stay null explicitly.)
        case
            when v.concentration is null then null
            when r.round_before_iaqi then air_round(greatest(v.concentration, 0), i.round_digits)
            else greatest(v.concentration, 0)
        end as concentration_used
    from long_values as v
    inner join indicators as i
        on v.rule_set = i.rule_set and v.grain = i.grain and v.input = i.input
    inner join int.air_rule_sets as r on v.rule_set = r.rule_set
),

-- the segment whose lower breakpoint is the highest one <= the value (on a breakpoint both
-- neighbouring segments give that breakpoint's IAQI exactly)
direct as (
    select
        u.*,
        u.concentration_used > b.bp_top as is_above_top,
        case
            when u.concentration_used <= b.bp_top
                then air_iaqi_segment(u.concentration_used, b.bp_lo, b.bp_hi, b.iaqi_lo, b.iaqi_hi)
        end as iaqi_on_scale
    from used as u
    asof left join breakpoints as b
        on
            u.rule_set = b.rule_set and u.pollutant = b.pollutant
            and u.bp_averaging = b.averaging and u.concentration_used >= b.bp_lo
),

resolved as (
    select
        d.*,
        case
            when d.concentration_used is null then null
            when not d.is_above_top then d.iaqi_on_scale
            -- above the top breakpoint: capped (500), a fixed IAQI (2026: O3 8h 300, SO2 1h 200)
            -- or another input's IAQI (2012: O3 8h -> O3 1h, SO2 1h -> SO2 24h)
            when d.above_top in ('cap', 'fixed') then d.above_top_iaqi
        end as iaqi_direct
    from direct as d
),

-- the inputs whose IAQI another input takes above its top breakpoint ('use_input')
stand_ins as (
    select *
    from resolved
    where input in (select indicators.above_top_input from indicators)
)

select
    r.grain,
    r.scope,
    r.local_date,
    r.period_end_local,
    r.rule_set,
    r.input,
    r.label,
    r.ordinal,
    r.counts_in_aqi,
    r.concentration,
    r.concentration_used,
    r.is_above_top,
    case
        when r.is_above_top and r.above_top = 'use_input' then o.iaqi_direct
        else r.iaqi_direct
    end as iaqi
from resolved as r
-- (grain, scope, period_end_local, input) is unique, so this matches at most one row; the CASE
-- above uses it only for 'use_input'. That test stays out of the ON clause: DuckDB 1.4 plans a
-- left join with a constant test of the left side in ON as a nested loop (2.4 s of 4.5 s here).
left join stand_ins as o
    on
        r.grain = o.grain and r.scope = o.scope
        and r.period_end_local = o.period_end_local and r.above_top_input = o.input;
