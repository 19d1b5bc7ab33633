-- Recompute dq.site_day_completeness for the (feed, local_date) pairs of load batches not yet
-- recorded. Expected readings per day = devices x lanes x 86400 / period_s of the catalogue.
create or replace temp table days_todo as
select distinct
    feed,
    unnest(changed_dates) as local_date
from meta.load_batches
where dq_recorded_at is null;

delete from dq.site_day_completeness as d
using days_todo as t
where d.feed = t.feed and d.local_date = t.local_date;

insert into dq.site_day_completeness by name
with sites as (
    select
        site_id,
        feed,
        len(device_ids) * coalesce(lanes, 1) * (86400 // period_s) as expected_readings
    from core.dim_site
),

observed as (
    select 'air' as feed, site_id, local_date, is_valid, observed_at
    from core.obs_air
    where local_date in (select t.local_date from days_todo as t where t.feed = 'air')
    union all
    select 'water' as feed, site_id, local_date, is_valid, observed_at
    from core.obs_water
    where local_date in (select t.local_date from days_todo as t where t.feed = 'water')
    union all
    select 'waterlogging' as feed, site_id, local_date, is_valid, observed_at
    from core.obs_waterlogging
    where local_date in (select t.local_date from days_todo as t where t.feed = 'waterlogging')
    union all
    select 'traffic' as feed, site_id, local_date, is_valid, observed_at
    from core.obs_traffic
    where local_date in (select t.local_date from days_todo as t where t.feed = 'traffic')
),

per_site_day as (
    select
        feed,
        site_id,
        local_date,
        count(*) as received_readings,
        count(*) filter (where is_valid) as valid_readings,
        max(observed_at) as last_observed_at
    from observed
    group by all
)

select
    t.feed,
    s.site_id,
    t.local_date,
    s.expected_readings,
    coalesce(o.received_readings, 0) as received_readings,
    coalesce(o.valid_readings, 0) as valid_readings,
    round(100.0 * coalesce(o.received_readings, 0) / s.expected_readings, 2) as completeness_pct,
    round(100.0 * coalesce(o.valid_readings, 0) / s.expected_readings, 2) as valid_pct,
    o.last_observed_at,
    now() as computed_at
from days_todo as t
inner join sites as s on t.feed = s.feed
left join per_site_day as o
    on t.feed = o.feed and s.site_id = o.site_id and t.local_date = o.local_date;

update meta.load_batches
set dq_recorded_at = now()
where dq_recorded_at is null;
