-- How many snapshots the lake keeps (time travel reaches back to the oldest), and its time.
with lake_snapshots as (
    select * from ducklake_snapshots('lake')
)

select
    count(*) as n_snapshots,
    min(snapshot_time) as oldest_snapshot_at
from lake_snapshots;
