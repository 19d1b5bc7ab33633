-- Every (kind, site) the store has seen, with its open alert if any: what the retained topics
-- must hold after a restart (the open alert's message, or nothing).
with alerts_imported as (
    select * from alerts
),

topics as (
    select distinct kind, site_id from alerts_imported
)

select
    t.kind, t.site_id, a.alert_id
from topics as t
left join alerts_imported as a
    on t.kind = a.kind and t.site_id = a.site_id and a.cleared_at is null
order by t.kind, t.site_id;
