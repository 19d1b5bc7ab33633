-- Insert a merged batch's readings into core, straight from Arrow, when none of them is a
-- duplicate or stale (else core/insert_obs_stored.sql).
-- Input registered by the loader: core_rows = batch_rows (lane and direction only for
-- traffic) plus, per reading, failed_expectations, is_valid and invalid_columns (from
-- batch_failed).
-- No join and no staging table: a join here cost about 0.6 s and 150 MB per million rows.

insert into core.obs_{{feed}} by name
select
    * exclude (topic, row_id, source_sha256),
    $validation_run_id as validation_run_id,
    $loaded_at as loaded_at
from core_rows;
