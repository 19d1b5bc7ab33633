-- Merge one validated traffic batch (keyed per lane) into core; same steps as merge_obs.sql.
-- Inputs registered by the loader: batch_rows (landing rows + row_id, source_file,
-- source_sha256; one row per key, files already checked against the ledger) and batch_flags
-- (row_id, expectation, column_name, observed_value, observed_text from GX).
-- Runs inside the caller's transaction: all of it commits or none of it.
-- Staging is the temp table staged (see 0006_staging_in_memory.sql).

-- every failure of a reading, device flags split into one token each
create or replace temp table batch_flag_rows as
with flags_from_gx as (
    select
        b.site_id,
        b.device_id,
        b.lane,
        b.observed_at,
        b.local_date,
        f.expectation,
        f.column_name,
        f.observed_value,
        f.observed_text
    from batch_flags as f
    inner join batch_rows as b using (row_id)
    where f.expectation <> 'device_flag'
),

device_flags as (
    select
        site_id,
        device_id,
        lane,
        observed_at,
        local_date,
        'device_flag:' || unnest(string_split(flags, '|')) as expectation,
        'flags' as column_name,
        null::double as observed_value,
        flags as observed_text
    from batch_rows
    where flags <> ''
)

select * from flags_from_gx
union all
select * from device_flags;

-- the staged batch: core's columns plus the validation outcome, in a connection-temporary
-- table (in memory: staging in a file table would cost a second full write of the batch)
create or replace temp table staged as
with failed as (
    select
        site_id,
        device_id,
        lane,
        observed_at,
        string_agg(distinct expectation, '|' order by expectation) as failed_expectations
    from batch_flag_rows
    group by all
)

select
    b.* exclude (topic, row_id, source_sha256),
    coalesce(f.failed_expectations, '') as failed_expectations,
    f.failed_expectations is null as is_valid,
    $validation_run_id as validation_run_id,
    $loaded_at as loaded_at
from batch_rows as b
left join failed as f using (site_id, device_id, lane, observed_at);

-- what happens to each staged reading: new, revision (replaces core), duplicate, stale
create or replace temp table merge_plan as
with existing as (
    select site_id, device_id, lane, observed_at, content_hash, received_at
    from core.obs_{{feed}}
    where observed_at between $min_obs and $max_obs
)

select
    s.site_id,
    s.device_id,
    s.lane,
    s.observed_at,
    s.local_date,
    s.is_valid,
    case
        when e.site_id is null then 'new'
        when e.content_hash = s.content_hash then 'duplicate'
        when e.received_at > s.received_at then 'stale'
        else 'revision'
    end as action
from staged as s
left join existing as e using (site_id, device_id, lane, observed_at);

delete from core.obs_{{feed}} as c
using merge_plan as p
where
    p.action = 'revision'
    and c.site_id = p.site_id
    and c.device_id = p.device_id
    and c.lane = p.lane
    and c.observed_at = p.observed_at;

delete from dq.flagged_readings as d
using merge_plan as p
where
    d.feed = $feed
    and p.action = 'revision'
    and d.site_id = p.site_id
    and d.device_id = p.device_id
    and d.lane = p.lane
    and d.observed_at = p.observed_at;

insert into core.obs_{{feed}} by name
select s.*
from staged as s
semi join merge_plan as p
    on
        s.site_id = p.site_id
        and s.device_id = p.device_id
        and s.lane = p.lane
        and s.observed_at = p.observed_at
        and p.action in ('new', 'revision');

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
    $validation_run_id as validation_run_id,
    $loaded_at as flagged_at
from batch_flag_rows as f
semi join merge_plan as p
    on
        f.site_id = p.site_id
        and f.device_id = p.device_id
        and f.lane = p.lane
        and f.observed_at = p.observed_at
        and p.action in ('new', 'revision');

drop table staged;
