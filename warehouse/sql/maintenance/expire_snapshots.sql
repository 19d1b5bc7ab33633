-- Forget the snapshots $versions (a list of ids): time travel to them stops, and the files only
-- they referenced are scheduled for deletion. One row per snapshot expired.
call ducklake_expire_snapshots('lake', versions => $versions);
