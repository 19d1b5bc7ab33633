-- Item values and classes per section, per day, month to date or year to date.
with items as (
    select * from kpi.water_period_item
)

select
    as_of_date, period, period_start, site_id, item_code, channel, value, unit, n_results,
    item_class, class_label, is_assessment, exceedance_multiple, computed_at
from items
where
    as_of_date between $start_date and $end_date
    and ($period is null or period = $period)
    and ($site_id is null or site_id = $site_id)
order by as_of_date desc, period asc, site_id asc, item_code asc
limit $limit offset $offset;
