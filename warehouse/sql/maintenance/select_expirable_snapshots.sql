-- The snapshots taken before $older_than, never the current one. Compared here, on the typed
-- snapshot_time: ducklake_expire_snapshots(older_than => ...) on a SQLite catalog compares at
-- day granularity (every snapshot of the cut-off's UTC day counts as older; DuckLake 0.3).
with lake_snapshots as (
    select * from ducklake_snapshots('lake')
)

select snapshot_id
from lake_snapshots
where
    snapshot_time < $older_than
    and snapshot_id < (select max(s.snapshot_id) from lake_snapshots as s)
order by snapshot_id;
