-- Waterlogging events that started on the days of the range.
with events as (
    select * from kpi.waterlogging_events
)

select
    site_id, local_date, event_start, event_end, status, duration_min, peak_depth_cm, peak_at,
    recession_min, max_level, max_level_no, waterlogging_cm, closure_cm, danger_cm,
    n_wet_readings, last_wet_at, computed_at
from events
where
    local_date between $start_date and $end_date
    and ($site_id is null or site_id = $site_id)
order by event_start desc, site_id asc
limit $limit offset $offset;
