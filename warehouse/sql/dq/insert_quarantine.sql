-- Quarantined records of the files being loaded (quarantine_rows registered by the loader).
insert into dq.quarantine by name
select
    received_at,
    received_date,
    topic,
    feed,
    site_id,
    reason,
    detail,
    reading_index,
    payload_excerpt,
    payload_bytes,
    payload_sha256,
    source_file,
    $load_run_id as load_run_id,
    $loaded_at as loaded_at
from quarantine_rows;
