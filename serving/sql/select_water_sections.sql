-- Section (and drinking-source) classes per day, month to date or year to date.
with sections as (
    select * from kpi.water_period_section
)

select
    as_of_date, period, period_start, site_id, kind, water_body_type, target_class,
    section_class, class_label, grade_zh, grade_en, is_class_ii_or_better,
    is_class_iii_or_better, meets_target, is_compliant, main_pollutants, main_pollutants_json,
    n_items_assessed, n_results, expected_results, coverage_pct, computed_at
from sections
where
    as_of_date between $start_date and $end_date
    and ($period is null or period = $period)
    and ($site_id is null or site_id = $site_id)
order by as_of_date desc, period asc, site_id asc
limit $limit offset $offset;
