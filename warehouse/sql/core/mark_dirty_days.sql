-- Mark the local days changed by load batches not yet marked; the KPI DAG recomputes a day
-- whose kpi_computed_at is null or older than last_marked_at. A merge with one matched action:
-- a lake has no keys for "on conflict".
merge into core.dirty_days as d
using (
    -- group by, not distinct: a distinct source makes a lake's matched update fail with
    -- "Out of buffer" (DuckDB 1.4.4, both catalogs).
    select
        feed,
        local_date,
        now() as marked_at
    from (
        select
            feed,
            unnest(changed_dates) as local_date
        from meta.load_batches
        where dirty_marked_at is null
    ) as b
    group by feed, local_date
) as c
    on d.feed = c.feed and d.local_date = c.local_date
when matched then
    update
        set
            last_marked_at = c.marked_at,
            kpi_computed_at = null
when not matched then
    insert (feed, local_date, first_marked_at, last_marked_at, kpi_computed_at)
    values (c.feed, c.local_date, c.marked_at, c.marked_at, null);

update meta.load_batches
set dirty_marked_at = now()
where dirty_marked_at is null;
