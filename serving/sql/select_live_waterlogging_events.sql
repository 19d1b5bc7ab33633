-- Waterlogging events of the open day and those still ongoing, as of the last intraday run:
-- ongoing first, then newest first.
select
    site_id,
    local_date,
    event_start,
    event_end,
    status as event_status,
    duration_min,
    peak_depth_cm,
    peak_at,
    recession_min,
    max_level,
    max_level_no,
    n_wet_readings,
    last_wet_at,
    'provisional' as status,
    computed_at
from kpi.intraday_waterlogging_events
where
    open_day = (select max(e.open_day) from kpi.intraday_waterlogging_events as e)
    and ($site_id is null or site_id = $site_id)
order by event_end is not null asc, event_start desc, site_id asc;
