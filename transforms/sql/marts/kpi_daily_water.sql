-- kpi.kpi_daily_water for as-of days $start_date..$end_date: shares over the sections assessed in
-- each period (a section without any valid assessment result in the period is not assessed).
delete from kpi.kpi_daily_water where local_date between $start_date and $end_date;

insert into kpi.kpi_daily_water
with
sections as (
    select *
    from kpi.kpi_period_water_section
    where as_of_date between $start_date and $end_date
),

scoped as (
    select
        *,
        case kind
            when 'water_section' then 'sections'
            when 'drinking_water_source' then 'drinking_sources'
        end as scope
    from sections
),

counted as (
    select
        as_of_date as local_date,
        period,
        any_value(period_start) as period_start,
        scope,
        count(*)::integer as n_sites,
        count(section_class)::integer as n_assessed,
        count(*) filter (where is_class_ii_or_better)::integer as n_class_ii_or_better,
        count(*) filter (where is_class_iii_or_better)::integer as n_class_iii_or_better,
        count(*) filter (where meets_target)::integer as n_meets_target,
        count(*) filter (where is_compliant)::integer as n_compliant,
        sum(n_results) as n_results,
        sum(expected_results) as expected_results
    from scoped
    group by all
)

select
    local_date,
    period,
    period_start,
    scope,
    n_sites,
    n_assessed,
    n_class_ii_or_better,
    round(100.0 * n_class_ii_or_better / nullif(n_assessed, 0), 1) as class_ii_share_pct,
    n_class_iii_or_better,
    round(100.0 * n_class_iii_or_better / nullif(n_assessed, 0), 1) as class_iii_share_pct,
    n_meets_target,
    round(100.0 * n_meets_target / nullif(n_assessed, 0), 1) as target_attainment_pct,
    case when scope = 'drinking_sources' then n_compliant end as n_compliant,
    case
        when scope = 'drinking_sources'
            then round(100.0 * n_compliant / nullif(n_assessed, 0), 1)
    end as compliance_pct,
    round(100.0 * n_results / nullif(expected_results, 0), 1) as coverage_pct,
    now() as computed_at
from counted;
