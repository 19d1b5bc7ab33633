-- Pack rows of the water marts: water.section_class / water.source_class per site (day class,
-- with month- and year-to-date classes in details) and the county shares.
insert into kpi.pack_values
with
sites as (
    select *
    from kpi.water_period_section
    where as_of_date between $start_date and $end_date
),

site_day as (
    select
        d.*,
        m.section_class as month_class,
        m.class_label as month_class_label,
        y.section_class as year_class,
        y.class_label as year_class_label,
        y.main_pollutants as year_main_pollutants,
        tg.class_no as target_class_no
    from sites as d
    left join sites as m
        on d.site_id = m.site_id and d.as_of_date = m.as_of_date and m.period = 'month'
    left join sites as y
        on d.site_id = y.site_id and d.as_of_date = y.as_of_date and y.period = 'year'
    -- The target is the site's own target class (catalogue), published as its class number.
    left join ref.water_grades as tg on d.target_class = tg.class_label
    where d.period = 'day'
),

county as (
    select *
    from kpi.water_daily
    where local_date between $start_date and $end_date
),

county_day as (
    select
        d.*,
        m.class_ii_share_pct as month_class_ii_share_pct,
        y.class_ii_share_pct as year_class_ii_share_pct,
        m.class_iii_share_pct as month_class_iii_share_pct,
        y.class_iii_share_pct as year_class_iii_share_pct,
        m.target_attainment_pct as month_target_attainment_pct,
        y.target_attainment_pct as year_target_attainment_pct,
        m.compliance_pct as month_compliance_pct,
        y.compliance_pct as year_compliance_pct,
        m.n_assessed as month_n_assessed,
        y.n_assessed as year_n_assessed
    from county as d
    left join county as m
        on d.local_date = m.local_date and d.scope = m.scope and m.period = 'month'
    left join county as y
        on d.local_date = y.local_date and d.scope = y.scope and y.period = 'year'
    where d.period = 'day'
)

select
    case kind when 'water_section' then 'water.section_class' else 'water.source_class' end
        as kpi_id,
    as_of_date as local_date,
    site_id as dimension,
    section_class::double as value,
    class_label as value_text,
    'class' as unit,
    target_class_no::double as target,
    kpi_status('water', as_of_date, $as_of_date::date, coverage_pct) as status,
    coverage_pct,
    json_object(
        'grade_zh', grade_zh,
        'grade_en', grade_en,
        'target_class', target_class,
        'meets_target', meets_target,
        'is_compliant', is_compliant,
        'main_pollutants', main_pollutants,
        'main_pollutants_detail', main_pollutants_json,
        'month_class', month_class_label,
        'year_class', year_class_label,
        'year_main_pollutants', year_main_pollutants,
        'n_items_assessed', n_items_assessed,
        'n_results', n_results
    ) as details,
    now() as computed_at
from site_day

union all

select
    k.kpi_id,
    c.local_date,
    'county',
    case k.kpi_id
        when 'water.class_ii_share' then c.class_ii_share_pct
        when 'water.class_iii_share' then c.class_iii_share_pct
        when 'water.target_attainment' then c.target_attainment_pct
    end,
    case k.kpi_id
        when 'water.class_ii_share' then c.n_class_ii_or_better
        when 'water.class_iii_share' then c.n_class_iii_or_better
        when 'water.target_attainment' then c.n_meets_target
    end || '/' || c.n_assessed,
    '%',
    pack_target(k.kpi_id, c.local_date),
    kpi_status('water', c.local_date, $as_of_date::date, c.coverage_pct),
    c.coverage_pct,
    json_object(
        'period', 'day',
        'n_sites', c.n_sites,
        'n_assessed', c.n_assessed,
        'month_pct', case k.kpi_id
            when 'water.class_ii_share' then c.month_class_ii_share_pct
            when 'water.class_iii_share' then c.month_class_iii_share_pct
            when 'water.target_attainment' then c.month_target_attainment_pct
        end,
        'year_pct', case k.kpi_id
            when 'water.class_ii_share' then c.year_class_ii_share_pct
            when 'water.class_iii_share' then c.year_class_iii_share_pct
            when 'water.target_attainment' then c.year_target_attainment_pct
        end,
        'month_n_assessed', c.month_n_assessed,
        'year_n_assessed', c.year_n_assessed
    ),
    now()
from county_day as c
cross join (
    values ('water.class_ii_share'), ('water.class_iii_share'), ('water.target_attainment')
) as k (kpi_id)
where c.scope = 'sections'

union all

select
    'water.drinking_source_compliance',
    local_date,
    'county',
    compliance_pct,
    n_compliant || '/' || n_assessed,
    '%',
    pack_target('water.drinking_source_compliance', local_date),
    kpi_status('water', local_date, $as_of_date::date, coverage_pct),
    coverage_pct,
    json_object(
        'period', 'day',
        'n_sites', n_sites,
        'n_assessed', n_assessed,
        'month_pct', month_compliance_pct,
        'year_pct', year_compliance_pct,
        'month_n_assessed', month_n_assessed,
        'year_n_assessed', year_n_assessed,
        'supplementary_items', 'not measured (feed v1 has no GB 3838 Table 2 channels)'
    ),
    now()
from county_day
where scope = 'drinking_sources';
