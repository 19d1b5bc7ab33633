-- One row per (load run, feed); the landing load and the quarantine load each add their part.
insert into dq.batch_counts (
    load_run_id, feed, validation_run_id, files, rows_read, accepted_valid, flagged,
    partly_valid, duplicates_dropped, revisions, quarantined, loaded_at
)
values (
    $load_run_id, $feed, $validation_run_id, $files, $rows_read, $accepted_valid, $flagged,
    $partly_valid, $duplicates_dropped, $revisions, $quarantined, $loaded_at
)
on conflict (load_run_id, feed) do update set
    validation_run_id = coalesce(excluded.validation_run_id, dq.batch_counts.validation_run_id),
    files = dq.batch_counts.files + excluded.files,
    rows_read = dq.batch_counts.rows_read + excluded.rows_read,
    accepted_valid = dq.batch_counts.accepted_valid + excluded.accepted_valid,
    flagged = dq.batch_counts.flagged + excluded.flagged,
    partly_valid = dq.batch_counts.partly_valid + excluded.partly_valid,
    duplicates_dropped = dq.batch_counts.duplicates_dropped + excluded.duplicates_dropped,
    revisions = dq.batch_counts.revisions + excluded.revisions,
    quarantined = dq.batch_counts.quarantined + excluded.quarantined,
    loaded_at = excluded.loaded_at;
