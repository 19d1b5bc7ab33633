-- Merge one validated batch of a feed into core; one file for every feed.
-- Inputs registered by the loader: batch_rows (landing rows + row_id, source_file,
-- source_sha256; one row per key, files already checked against the ledger) and batch_flags
-- (row_id, expectation, column_name, observed_value, observed_text, scope, invalidated_columns
-- from GX: scope 'reading' invalidates the reading, 'value' only invalidated_columns).
-- $series_key names the columns of a series: site_id, device_id and, for traffic only, lane
-- (air, water and waterlogging carry no lane in core). A bound list, never formatted in: it
-- picks columns by name (columns(lambda ...)) and the natural join below keys on them.
-- Runs inside the caller's transaction: all of it commits or none of it.
-- This file plans the merge, applies revisions and stores the flags; the core rows are then
-- inserted by core/insert_obs.sql straight from the Arrow batch (no staging copy: the temp
-- tables here hold only row ids, the plan and the few failing readings).

-- every failure of a reading, device flags split into one token each
create or replace temp table batch_flag_rows as
with flags_from_gx as (
    select
        f.row_id,
        b.site_id,
        b.device_id,
        -- lane only where it keys the series (null elsewhere, as the contract has it)
        case when list_contains($series_key, 'lane') then b.lane end as lane,
        b.observed_at,
        b.local_date,
        f.expectation,
        f.column_name,
        f.observed_value,
        f.observed_text,
        f.scope,
        f.invalidated_columns
    from batch_flags as f
    inner join batch_rows as b using (row_id)
    where f.expectation <> 'device_flag'
),

device_flags as (
    select
        row_id,
        site_id,
        device_id,
        case when list_contains($series_key, 'lane') then lane end as lane,
        observed_at,
        local_date,
        'device_flag:' || unnest(string_split(flags, '|')) as expectation,
        'flags' as column_name,
        null::double as observed_value,
        flags as observed_text,
        -- a fault flag is about the instrument: nothing it measured counts
        'reading' as scope,
        []::varchar[] as invalidated_columns
    from batch_rows
    where flags <> ''
)

select * from flags_from_gx
union all
select * from device_flags;

-- one row per failing reading: what it failed, whether the reading as a whole still counts,
-- and which of its values do not (row_id is unique in the batch)
create or replace temp table batch_failed as
select
    row_id,
    string_agg(distinct expectation, '|' order by expectation) as failed_expectations,
    not bool_or(scope = 'reading') as is_valid,
    -- null when only whole-reading checks failed (as for readings without any failure)
    nullif(list_sort(list_distinct(flatten(list(invalidated_columns)))), []) as invalid_columns
from batch_flag_rows
group by row_id;

-- what happens to each reading of the batch: new, revision (replaces core), duplicate, stale;
-- the stored reading of the same key (series key and observed_at) is found by a natural join:
-- the two sides share only those columns
create or replace temp table merge_plan as
with batch_keys as (
    select
        columns(lambda c: list_contains($series_key, c)),
        observed_at,
        row_id,
        local_date,
        content_hash,
        received_at
    from batch_rows
),

stored as (
    select
        columns(lambda c: list_contains($series_key, c)),
        observed_at,
        rowid as stored_rowid,
        content_hash as stored_hash,
        received_at as stored_received_at
    from core.obs_{{feed}}
    where observed_at between $min_obs and $max_obs
)

select
    b.row_id,
    b.local_date,
    -- no failure at all (dq.batch_counts.accepted_valid); the partly valid readings are
    -- counted from batch_failed (small) by the loader, not with a column per reading here
    f.row_id is null as is_clean,
    e.stored_rowid,
    case
        when e.stored_rowid is null then 'new'
        when e.stored_hash = b.content_hash then 'duplicate'
        when e.stored_received_at > b.received_at then 'stale'
        else 'revision'
    end as action
from batch_keys as b
natural left join stored as e
left join batch_failed as f on b.row_id = f.row_id;

-- the stored readings the batch replaces (usually none), by their row in core
delete from core.obs_{{feed}}
where
    observed_at between $min_obs and $max_obs
    and rowid in (select p.stored_rowid from merge_plan as p where p.action = 'revision');

-- the keys of those readings. An IN list, not a semi join: DuckDB 1.4 runs a semi join of the
-- registered Arrow batch 250x slower (3.4 s against 0.013 s per 100 k rows; the whole load
-- took 12x longer, bench_load)
create or replace temp table batch_revised as
select
    b.site_id,
    b.device_id,
    case when list_contains($series_key, 'lane') then b.lane end as lane,
    b.observed_at
from batch_rows as b
where b.row_id in (select p.row_id from merge_plan as p where p.action = 'revision');

-- their flags; lane is null outside traffic on both sides
delete from dq.flagged_readings as d
using batch_revised as r
where
    d.feed = $feed
    and d.observed_at between $min_obs and $max_obs
    and d.site_id = r.site_id
    and d.device_id = r.device_id
    and d.lane is not distinct from r.lane
    and d.observed_at = r.observed_at;

insert into dq.flagged_readings by name
select
    $feed as feed,
    f.site_id,
    f.device_id,
    f.lane,
    f.observed_at,
    f.local_date,
    f.expectation,
    f.column_name,
    f.observed_value,
    f.observed_text,
    f.scope,
    f.invalidated_columns,
    $validation_run_id as validation_run_id,
    $loaded_at as flagged_at
from batch_flag_rows as f
-- row_id is never null, so NOT IN is the anti join (as a join, DuckDB 1.4 took 0.8 s, now < 0.01)
where f.row_id not in (select p.row_id from merge_plan as p where p.action in ('duplicate', 'stale'));
