-- Scratch: the waterlogging events of $open_day and those still ongoing (started earlier), as
-- the production model computed them into kpi.waterlogging_events.
select
    site_id,
    local_date,
    event_start,
    event_end,
    status,
    duration_min,
    peak_depth_cm,
    peak_at,
    recession_min,
    max_level,
    max_level_no,
    waterlogging_cm,
    closure_cm,
    danger_cm,
    n_wet_readings,
    last_wet_at
from kpi.waterlogging_events
where local_date = $open_day or status = 'ongoing'
