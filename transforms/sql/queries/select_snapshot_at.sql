-- The lake's snapshot current at $at (the last one taken at or before it; null when none), and
-- the oldest snapshot still kept (older ones were expired, or the lake did not exist yet).
with lake_snapshots as (
    select * from ducklake_snapshots('lake')
)

select
    max(snapshot_id) filter (where snapshot_time <= $at) as snapshot_id,
    max(snapshot_time) filter (where snapshot_time <= $at) as snapshot_time,
    min(snapshot_id) as oldest_snapshot_id,
    min(snapshot_time) as oldest_snapshot_time
from lake_snapshots;
