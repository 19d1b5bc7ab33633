-- The open alerts, oldest first: the service's state after a restart, the API's active list.
with alerts_imported as (
    select * from alerts
)

select
    alert_id, kind, site_id, level, level_no, value, unit, threshold,
    started_at, updated_at, cleared_at, peak_value, channel, raised_at
from alerts_imported
where cleared_at is null
order by started_at, kind, site_id;
