-- Dirty days (core.dirty_days) in $since .. $until not yet consumed by a KPI run.
select distinct
    feed,
    local_date
from core.dirty_days
where
    local_date between $since and $until
    and (kpi_computed_at is null or kpi_computed_at < last_marked_at);
