-- (feed, local day) pairs the completeness recompute just run covered (days_todo, from
-- dq/recompute_site_day_completeness.sql).
select count(*) as feed_days
from days_todo;
