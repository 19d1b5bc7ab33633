-- Remember every path of the batch (ledger_rows), loaded or skipped as a known checksum, with
-- the size and mtime it has now. A merge with one matched action: a lake has no keys for
-- "on conflict" and takes no second matched action.
merge into meta.ledger_paths as p
using (
    select
        path,
        size_bytes,
        mtime_ns,
        sha256,
        kind,
        $load_run_id as load_run_id,
        $loaded_at as seen_at
    from ledger_rows
) as r
    on p.path = r.path
when matched then
    update
        set
            size_bytes = r.size_bytes,
            mtime_ns = r.mtime_ns,
            sha256 = r.sha256,
            kind = r.kind,
            load_run_id = r.load_run_id,
            seen_at = r.seen_at
when not matched then
    insert (path, size_bytes, mtime_ns, sha256, kind, load_run_id, seen_at)
    values (r.path, r.size_bytes, r.mtime_ns, r.sha256, r.kind, r.load_run_id, r.seen_at);
