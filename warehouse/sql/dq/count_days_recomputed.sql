-- (feed, local day) pairs the completeness recompute just run covered (days_todo, from
-- dq/recompute_site_day_completeness.sql).
select count(*) as days
from days_todo;
