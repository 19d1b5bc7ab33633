-- One row per (load run, feed); the landing load and the quarantine load each add their part.
-- A merge with one matched action: a lake has no keys for "on conflict".
merge into dq.batch_counts as b
using (
    select
        $load_run_id as load_run_id,
        $feed as feed,
        $validation_run_id as validation_run_id,
        $files as files,
        $rows_read as rows_read,
        $accepted_valid as accepted_valid,
        $flagged as flagged,
        $partly_valid as partly_valid,
        $duplicates_dropped as duplicates_dropped,
        $revisions as revisions,
        $quarantined as quarantined,
        $loaded_at as loaded_at
) as n
    on b.load_run_id = n.load_run_id and b.feed = n.feed
when matched then
    update
        set
            validation_run_id = coalesce(n.validation_run_id, b.validation_run_id),
            files = b.files + n.files,
            rows_read = b.rows_read + n.rows_read,
            accepted_valid = b.accepted_valid + n.accepted_valid,
            flagged = b.flagged + n.flagged,
            partly_valid = b.partly_valid + n.partly_valid,
            duplicates_dropped = b.duplicates_dropped + n.duplicates_dropped,
            revisions = b.revisions + n.revisions,
            quarantined = b.quarantined + n.quarantined,
            loaded_at = n.loaded_at
when not matched then insert (
    load_run_id, feed, validation_run_id, files, rows_read, accepted_valid, flagged,
    partly_valid, duplicates_dropped, revisions, quarantined, loaded_at
)
values (
    n.load_run_id, n.feed, n.validation_run_id, n.files, n.rows_read, n.accepted_valid, n.flagged,
    n.partly_valid, n.duplicates_dropped, n.revisions, n.quarantined, n.loaded_at
);
