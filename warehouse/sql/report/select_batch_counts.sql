select
    feed,
    files,
    rows_read,
    accepted_valid,
    flagged,
    partly_valid,
    duplicates_dropped,
    revisions,
    quarantined
from dq.batch_counts
where load_run_id = $load_run_id
order by feed;
