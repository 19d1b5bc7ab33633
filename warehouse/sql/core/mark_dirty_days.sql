-- Mark the local days changed by load batches not yet marked; the KPI DAG recomputes a day
-- whose kpi_computed_at is null or older than last_marked_at.
insert into core.dirty_days (feed, local_date, first_marked_at, last_marked_at, kpi_computed_at)
select distinct
    feed,
    unnest(changed_dates) as local_date,
    now() as first_marked_at,
    now() as last_marked_at,
    null::timestamptz as kpi_computed_at
from meta.load_batches
where dirty_marked_at is null
on conflict (feed, local_date) do update set
    last_marked_at = excluded.last_marked_at,
    kpi_computed_at = null;

update meta.load_batches
set dirty_marked_at = now()
where dirty_marked_at is null;
