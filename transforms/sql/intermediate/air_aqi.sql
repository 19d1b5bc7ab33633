-- int.air_aqi: one row per (grain, scope, period_end_local) of $start_date .. $end_date.
-- AQI = max IAQI of the inputs that count under the rule set. Missing-pollutant rule
-- (int.air_rule_sets.missing_pollutant): 'publish' = the AQI of the available inputs is published,
-- the missing ones are NA (HJ 633-2012: the day has an AQI and is a valid day);
-- 'publish_above' = published only when the AQI of the available inputs is >
-- missing_publish_above_aqi, else NA and excluded (HJ 633-2026); 'na' = never published with a
-- counted input missing (neither standard; kept for configuration). Primary pollutant(s): every
-- counted input whose IAQI equals the AQI, in the standard's order, only when AQI > primary_above_aqi.
delete from int.air_aqi where local_date between $start_date and $end_date;

insert into int.air_aqi
with iaqi as (
    select *
    from int.air_iaqi
    where local_date between $start_date and $end_date
),

categories as (
    select
        rule_set::varchar as rule_set,
        level::integer as level,
        aqi_lo::integer as aqi_lo,
        aqi_hi::integer as aqi_hi,
        level_zh::varchar as level_zh,
        category_zh::varchar as category_zh,
        category_en::varchar as category_en,
        concat_ws(',', colour_r, colour_g, colour_b) as colour_rgb
    from ref.aqi_categories
),

agg as (
    select
        grain,
        scope,
        period_end_local,
        any_value(local_date) as local_date,
        any_value(rule_set) as rule_set,
        count(*) filter (where counts_in_aqi) as count_required,
        count(iaqi) filter (where counts_in_aqi) as count_available,
        max(iaqi) filter (where counts_in_aqi) as aqi_available_max,
        max(iaqi) filter (where counts_in_aqi and label = 'SO2') as iaqi_so2,
        max(iaqi) filter (where counts_in_aqi and label = 'NO2') as iaqi_no2,
        max(iaqi) filter (where counts_in_aqi and label = 'PM10') as iaqi_pm10,
        max(iaqi) filter (where counts_in_aqi and label = 'CO') as iaqi_co,
        max(iaqi) filter (where counts_in_aqi and label in ('O3_1h', 'O3')) as iaqi_o3_1h,
        max(iaqi) filter (where counts_in_aqi and label = 'O3_8h') as iaqi_o3_8h,
        max(iaqi) filter (where counts_in_aqi and label = 'PM2.5') as iaqi_pm25
    from iaqi
    group by grain, scope, period_end_local
),

published as (
    select
        a.*,
        r.primary_above_aqi,
        r.good_max_aqi,
        case
            when a.count_available = 0 then null
            when a.count_available = a.count_required then a.aqi_available_max
            when r.missing_pollutant = 'publish' then a.aqi_available_max
            when
                r.missing_pollutant = 'publish_above'
                and a.aqi_available_max > r.missing_publish_above_aqi
                then a.aqi_available_max
        end as aqi
    from agg as a
    inner join int.air_rule_sets as r on a.rule_set = r.rule_set
),

primaries as (
    select
        p.grain,
        p.scope,
        p.period_end_local,
        string_agg(i.label, ',' order by i.ordinal) as primary_pollutants
    from published as p
    inner join iaqi as i
        on
            p.grain = i.grain and p.scope = i.scope and p.period_end_local = i.period_end_local
            and i.counts_in_aqi and p.aqi = i.iaqi
    where p.aqi > p.primary_above_aqi
    group by p.grain, p.scope, p.period_end_local
)

select
    p.grain,
    p.scope,
    p.local_date,
    p.period_end_local,
    p.rule_set,
    p.count_required,
    p.count_available,
    p.aqi_available_max,
    p.aqi,
    p.aqi is null and p.count_available > 0 as excluded_missing_pollutant,
    pr.primary_pollutants,
    c.level,
    c.level_zh,
    c.category_zh,
    c.category_en,
    c.colour_rgb,
    coalesce(p.aqi <= p.good_max_aqi, false) as is_good,
    p.iaqi_so2,
    p.iaqi_no2,
    p.iaqi_pm10,
    p.iaqi_co,
    p.iaqi_o3_1h,
    p.iaqi_o3_8h,
    p.iaqi_pm25
from published as p
left join primaries as pr
    on
        p.grain = pr.grain and p.scope = pr.scope
        and p.period_end_local = pr.period_end_local
left join categories as c
    on p.rule_set = c.rule_set and p.aqi between c.aqi_lo and c.aqi_hi;
