-- Insert a merged batch's new and revised readings into core, straight from Arrow.
-- Input registered by the loader: core_rows = batch_rows (lane and direction only for
-- traffic) plus, per reading, failed_expectations and is_valid (from batch_failed) and
-- is_stored (false for the duplicates and stale readings of merge_plan).
-- No join and no staging table: a join here cost about 0.6 s and 150 MB per million rows.

insert into core.obs_{{feed}} by name
select
    * exclude (topic, row_id, source_sha256, is_stored),
    $validation_run_id as validation_run_id,
    $loaded_at as loaded_at
from core_rows
where is_stored;
