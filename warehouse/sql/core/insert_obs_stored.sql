-- Insert a merged batch's new and revised readings into core, straight from Arrow, when some
-- are duplicates or stale (is_stored = false, from merge_plan); see core/insert_obs.sql.

insert into core.obs_{{feed}} by name
select
    * exclude (topic, row_id, source_sha256, is_stored),
    $validation_run_id as validation_run_id,
    $loaded_at as loaded_at
from core_rows
where is_stored;
