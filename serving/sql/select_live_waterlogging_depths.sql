-- Each waterlogging point's current depth and alert level as of the last intraday run.
select
    site_id,
    district,
    observed_at,
    depth_cm,
    level_no,
    level_code,
    waterlogging_cm,
    closure_cm,
    danger_cm,
    'provisional' as status,
    data_until,
    computed_at
from kpi.intraday_waterlogging_depths
where
    open_day = (select max(d.open_day) from kpi.intraday_waterlogging_depths as d)
    and ($site_id is null or site_id = $site_id)
order by site_id;
