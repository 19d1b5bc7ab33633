-- kpi.water_daily for as-of days $start_date..$end_date: shares over the sections assessed in
-- each period (a section without any valid assessment result in the period is not assessed).
-- noqa: disable=LT02
-- (SQLFluff's duckdb dialect does not indent `create macro` bodies: LT02 would dedent them.)
-- (n / d) x 100 % to one decimal, rounded half to even (GB/T 8170, 四舍六入五成双) in integers:
-- DuckDB's round() rounds half away from zero (13/16 = 81.25 % would publish 81.3, not 81.2).
create or replace temp macro water_share_pct(n, d) as
    case
        when d > 0 then (
            (1000 * n::bigint) // d + case
                when 2 * ((1000 * n::bigint) % d) > d then 1
                when 2 * ((1000 * n::bigint) % d) < d then 0
                else ((1000 * n::bigint) // d) % 2
            end
        ) / 10.0
    end;
-- noqa: enable=LT02

delete from kpi.water_daily where local_date between $start_date and $end_date;

insert into kpi.water_daily
with
sections as (
    select *
    from kpi.water_period_section
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
    water_share_pct(n_class_ii_or_better, n_assessed) as class_ii_share_pct,
    n_class_iii_or_better,
    water_share_pct(n_class_iii_or_better, n_assessed) as class_iii_share_pct,
    n_meets_target,
    water_share_pct(n_meets_target, n_assessed) as target_attainment_pct,
    case when scope = 'drinking_sources' then n_compliant end as n_compliant,
    case
        when scope = 'drinking_sources'
            then water_share_pct(n_compliant, n_assessed)
    end as compliance_pct,
    water_share_pct(n_results, expected_results) as coverage_pct,
    now() as computed_at
from counted;
