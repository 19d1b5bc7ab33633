-- Alerts open now or cleared at or after $since, newest first, at most $limit rows.
with alerts_imported as (
    select * from alerts
)

select
    alert_id, kind, site_id, level, level_no, value, unit, threshold,
    started_at, updated_at, cleared_at, peak_value, channel, raised_at
from alerts_imported
where cleared_at is null or cleared_at >= $since
order by started_at desc, kind asc, site_id asc
limit $limit;
