-- Record loaded files (ledger_rows registered by the loader); a known checksum is kept as is,
-- and of two files of the batch with one checksum the first path is recorded. No "on conflict":
-- a lake has no keys (docs/warehouse.md), so the same statement serves every backend.
insert into meta.load_ledger by name
select
    r.sha256,
    r.path,
    r.kind,
    r.feed,
    r.size_bytes,
    r.mtime_ns,
    r.rows,
    $load_run_id as load_run_id,
    $loaded_at as loaded_at
from ledger_rows as r
anti join meta.load_ledger as l on r.sha256 = l.sha256
qualify row_number() over (partition by r.sha256 order by r.path) = 1;
