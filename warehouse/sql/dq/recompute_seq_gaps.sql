-- Recompute dq.seq_gaps (gaps, resets, repeats of the per-device seq) where the batch just
-- merged can have changed them: for each device of the batch, every pair of consecutive
-- stored readings with the later one at or after the device's first reading in the batch and
-- the earlier one at or before its last. The rest of the device's series is untouched, so
-- that is all a batch can change: a late reading that fills a gap splits the pair that
-- straddled it; a rerun finds the same pairs and changes nothing.
-- Input registered by the loader: seq_batch (site_id, device_id, observed_at of the batch,
-- already merged into core). Runs inside the load transaction, after the merge.
-- A device's series is ordered by (observed_at, seq, lane): traffic lanes of one detector
-- share its counter and one observed_at.

-- the devices of the batch, the span of their readings in it and a small integer code (the
-- window below sorts by it: partitioning by two varchar columns cost 2-3x as much)
create or replace temp table seq_devices as
select
    s.site_id,
    s.device_id,
    (row_number() over ())::integer as dev,
    s.lo,
    s.hi
from (
    select
        site_id,
        device_id,
        min(observed_at) as lo,
        max(observed_at) as hi
    from seq_batch
    group by all
) as s;

-- the stored readings of the feed as (site_id, device_id, lane, observed_at, seq, local_date);
-- only core.obs_traffic has a lane: union by name adds it as null for the other feeds
create or replace temp view seq_core as
select null::smallint as lane
where false
union all by name
select
    columns(
        lambda c: c in ('site_id', 'device_id', 'lane', 'observed_at', 'seq', 'local_date')
    )
from core.obs_{{feed}};

-- each device's last stored reading before the batch's range: first looked for since
-- $near_since (zone maps skip older row groups), then, for a device silent that long, in
-- all older readings (a device's first batch scans once and finds nothing)
create or replace temp table seq_edge_before as
select
    d.dev,
    max(struct_pack(c.observed_at, c.seq, c.lane, c.local_date)) as r
from seq_core as c
inner join seq_devices as d using (site_id, device_id)
where c.observed_at >= $near_since and c.observed_at < $min_obs
group by d.dev;

insert into seq_edge_before
with silent_devices as (
    -- the devices without a stored reading since $near_since
    select s.*
    from seq_devices as s
    anti join seq_edge_before using (dev)
)

select
    d.dev,
    max(struct_pack(c.observed_at, c.seq, c.lane, c.local_date)) as r
from seq_core as c
inner join silent_devices as d using (site_id, device_id)
where c.observed_at < $near_since
group by d.dev;

-- each device's first stored reading after the batch's range (none while loads come in time
-- order; zone maps skip everything older)
create or replace temp table seq_edge_after as
select
    d.dev,
    min(struct_pack(c.observed_at, c.seq, c.lane, c.local_date)) as r
from seq_core as c
inner join seq_devices as d using (site_id, device_id)
where c.observed_at > $max_obs
group by d.dev;

-- the anomalies now present in the recomputed part of each device's series
create or replace temp table seq_found as
with series as (
    select d.dev, c.lane, c.observed_at, c.seq, c.local_date
    from seq_core as c
    inner join seq_devices as d using (site_id, device_id)
    where c.observed_at between $min_obs and $max_obs
    union all
    select dev, r.lane, r.observed_at, r.seq, r.local_date
    from seq_edge_before
    union all
    select dev, r.lane, r.observed_at, r.seq, r.local_date
    from seq_edge_after
),

pairs as (
    select
        dev,
        lag(seq) over w as seq_before,
        seq as seq_after,
        lag(observed_at) over w as observed_at_before,
        observed_at as observed_at_after,
        lag(lane) over w as lane_before,
        lane as lane_after,
        local_date,
        -- a difference, not seq_before + 1: seq may be as large as the bigint range
        seq - lag(seq) over w as step
    from series
    window w as (partition by dev order by observed_at, seq, lane)
)

select
    d.site_id,
    d.device_id,
    case when p.step > 1 then 'gap' when p.step < 0 then 'reset' else 'repeat' end as kind,
    p.seq_before,
    p.seq_after,
    case when p.step > 1 then p.seq_before + 1 end as seq_from,
    case when p.step > 1 then p.seq_after - 1 end as seq_to,
    case when p.step > 1 then p.step - 1 else 0 end as missing_count,
    p.observed_at_before,
    p.observed_at_after,
    p.lane_before,
    p.lane_after,
    p.local_date
from pairs as p
inner join seq_devices as d using (dev)
where
    p.observed_at_before is not null
    and p.step <> 1
    and p.observed_at_after >= d.lo
    and p.observed_at_before <= d.hi;

-- recorded anomalies of that part that are gone (a late reading filled the gap, a revision
-- changed a seq); one still present keeps its row and the load that first saw it
delete from dq.seq_gaps as g
using seq_devices as d
where
    g.feed = $feed
    and g.site_id = d.site_id
    and g.device_id = d.device_id
    and g.observed_at_after >= d.lo
    and g.observed_at_before <= d.hi
    and not exists (
        select 1
        from seq_found as f
        where
            f.site_id = g.site_id
            and f.device_id = g.device_id
            and f.observed_at_after = g.observed_at_after
            and f.lane_after is not distinct from g.lane_after
            and f.observed_at_before = g.observed_at_before
            and f.lane_before is not distinct from g.lane_before
            and f.seq_before = g.seq_before
            and f.seq_after = g.seq_after
    );

insert into dq.seq_gaps by name
select
    $feed as feed,
    f.*,
    $load_run_id as load_run_id,
    $validation_run_id as validation_run_id,
    $loaded_at as detected_at
from seq_found as f
where not exists (
    select 1
    from dq.seq_gaps as g
    where
        g.feed = $feed
        and g.site_id = f.site_id
        and g.device_id = f.device_id
        and g.observed_at_after = f.observed_at_after
        and g.lane_after is not distinct from f.lane_after
        and g.observed_at_before = f.observed_at_before
        and g.lane_before is not distinct from f.lane_before
        and g.seq_before = f.seq_before
        and g.seq_after = f.seq_after
);
