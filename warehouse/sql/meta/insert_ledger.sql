-- Record loaded files (ledger_rows registered by the loader); a known checksum is kept as is.
insert into meta.load_ledger by name
select
    sha256,
    path,
    kind,
    feed,
    size_bytes,
    mtime_ns,
    rows,
    $load_run_id as load_run_id,
    $loaded_at as loaded_at
from ledger_rows
on conflict (sha256) do nothing;
