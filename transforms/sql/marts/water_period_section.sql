-- kpi.water_period_section for as-of days $start_date..$end_date: the section's class is the
-- worst class among its assessment items (not water temperature, TN, fecal coliform); main
-- pollutants = up to three items worse than Class III, worst class first, then the largest
-- exceedance multiple (pH/DO have none and rank after items of the same class that do).
delete from kpi.water_period_section where as_of_date between $start_date and $end_date;

insert into kpi.water_period_section
with
items as (
    select *
    from kpi.water_period_item
    where as_of_date between $start_date and $end_date
),

sites as (
    select site_id, kind, water_body_type, target_class, period_s, len(device_ids) as n_devices
    from core.dim_site
    where kind in ('water_section', 'drinking_water_source')
),

site_daily as (
    select site_id, local_date, n_valid_slots
    from int.water_daily_site
    where local_date between date_trunc('year', $start_date::date)::date and $end_date
),

limits as (
    select item_code, any_value(item_zh) as item_zh, any_value(item_no) as item_no
    from ref.gb3838_limits
    group by item_code
),

supplementary as (
    select count(*) filter (where channel is not null) as n_measured
    from ref.gb3838_drinking_supplementary
),

as_of_days as (
    select unnest(generate_series($start_date::date, $end_date::date, interval 1 day))::date
        as as_of_date
),

periods as (
    select as_of_date, 'day' as period, as_of_date as period_start from as_of_days
    union all
    select as_of_date, 'month', date_trunc('month', as_of_date)::date from as_of_days
    union all
    select as_of_date, 'year', date_trunc('year', as_of_date)::date from as_of_days
),

-- Every catalogue site appears for every period, assessed or not (coverage shows the gap).
site_periods as (
    select p.*, s.*
    from periods as p
    cross join sites as s
),

received as (
    -- filled result slots, not readings: coverage stays within 100 % per section
    select p.as_of_date, p.period, d.site_id, sum(d.n_valid_slots)::integer as n_results
    from periods as p
    inner join site_daily as d on d.local_date between p.period_start and p.as_of_date
    group by all
),

assessed as (
    select
        as_of_date,
        period,
        site_id,
        max(item_class) as section_class,
        count(*)::integer as n_items_assessed
    from items
    where is_assessment and item_class is not null
    group by all
),

ranked_pollutants as (
    select
        i.as_of_date,
        i.period,
        i.site_id,
        i.item_code,
        l.item_zh,
        i.item_class,
        i.class_label,
        i.value,
        i.exceedance_multiple,
        row_number() over (
            partition by i.as_of_date, i.period, i.site_id
            order by i.item_class desc, i.exceedance_multiple desc nulls last, l.item_no asc
        ) as rank_no
    from items as i
    inner join limits as l on i.item_code = l.item_code
    where i.is_assessment and i.item_class > 3
),

main_pollutants as (
    select
        as_of_date,
        period,
        site_id,
        string_agg(
            item_zh || coalesce('(' || format('{:.2f}', exceedance_multiple) || ')', ''),
            '、' order by rank_no
        ) as main_pollutants,
        to_json(list({
            'item': item_code,
            'item_zh': item_zh,
            'class': class_label,
            'value': value,
            'exceedance_multiple': exceedance_multiple
        } order by rank_no)) as main_pollutants_json
    from ranked_pollutants
    where rank_no <= 3
    group by all
)

select
    sp.as_of_date,
    sp.period,
    sp.period_start,
    sp.site_id,
    sp.kind,
    sp.water_body_type,
    sp.target_class,
    a.section_class,
    g.class_label,
    g.grade_zh,
    g.grade_en,
    a.section_class <= 2 as is_class_ii_or_better,
    a.section_class <= 3 as is_class_iii_or_better,
    a.section_class <= tg.class_no as meets_target,
    -- Drinking sources: every assessed item at Class III or better; Table 2 items only when measured.
    case when sp.kind = 'drinking_water_source' then a.section_class <= 3 end as is_compliant,
    (select supplementary.n_measured from supplementary) > 0 as supplementary_measured,
    mp.main_pollutants,
    mp.main_pollutants_json,
    coalesce(a.n_items_assessed, 0) as n_items_assessed,
    coalesce(r.n_results, 0) as n_results,
    ((sp.as_of_date - sp.period_start + 1) * sp.n_devices * 86400 // sp.period_s)::integer
        as expected_results,
    round(
        100.0 * coalesce(r.n_results, 0)
        / ((sp.as_of_date - sp.period_start + 1) * sp.n_devices * 86400 // sp.period_s),
        1
    ) as coverage_pct,
    now() as computed_at
from site_periods as sp
left join assessed as a
    on sp.as_of_date = a.as_of_date and sp.period = a.period and sp.site_id = a.site_id
left join received as r
    on sp.as_of_date = r.as_of_date and sp.period = r.period and sp.site_id = r.site_id
left join main_pollutants as mp
    on sp.as_of_date = mp.as_of_date and sp.period = mp.period and sp.site_id = mp.site_id
left join ref.water_grades as g on a.section_class = g.class_no
left join ref.water_grades as tg on sp.target_class = tg.class_label;
