-- Remember every path of the batch (ledger_rows), loaded or skipped as a known checksum, with
-- the size and mtime it has now.
insert into meta.ledger_paths by name
select
    path,
    size_bytes,
    mtime_ns,
    sha256,
    kind,
    $load_run_id as load_run_id,
    $loaded_at as seen_at
from ledger_rows
on conflict (path) do update set
    size_bytes = excluded.size_bytes,
    mtime_ns = excluded.mtime_ns,
    sha256 = excluded.sha256,
    kind = excluded.kind,
    load_run_id = excluded.load_run_id,
    seen_at = excluded.seen_at;
