-- DuckLake variant of 0010_value_validity.sql, run instead of it on a lake (common/migrate.py):
-- the same columns and table without the list
-- default and the primary key (DuckLake has neither). A new lake has no flag rows to fill, and
-- the load always writes invalidated_columns.
-- Validity per value, not per reading (issue 9 item 3; GB 3095: a value that fails a check is
-- NA for its own averages only). A reading's is_valid now says whether the reading as a whole
-- counts (key, catalogue, future time, device fault flag); invalid_columns lists the value
-- columns a check invalidated (sorted; null when none, which most readings are: cheaper to store
-- than an empty list), which KPIs skip while the reading's other values count.
-- Readings stored before this migration keep their verdict (is_valid false for any failure,
-- invalid_columns null): the stricter old rule, never a value that should not count.
alter table core.obs_air add column invalid_columns varchar[];
alter table core.obs_water add column invalid_columns varchar[];
alter table core.obs_waterlogging add column invalid_columns varchar[];
alter table core.obs_traffic add column invalid_columns varchar[];

comment on column core.obs_air.is_valid is 'the reading as a whole counts: natural key present, site and device in the catalogue, not in the future, no device fault flag';
comment on column core.obs_air.invalid_columns is 'value columns a value-level expectation invalidated (sorted; null when none; why: failed_expectations and dq.flagged_readings); KPIs use a value only when is_valid and it is not listed';
comment on column core.obs_water.is_valid is 'the reading as a whole counts: natural key present, site and device in the catalogue, not in the future, no device fault flag';
comment on column core.obs_water.invalid_columns is 'value columns a value-level expectation invalidated (sorted; null when none; why: failed_expectations and dq.flagged_readings); KPIs use a value only when is_valid and it is not listed';
comment on column core.obs_waterlogging.is_valid is 'the reading as a whole counts: natural key present, site and device in the catalogue, not in the future, no device fault flag';
comment on column core.obs_waterlogging.invalid_columns is 'value columns a value-level expectation invalidated (sorted; null when none; why: failed_expectations and dq.flagged_readings); KPIs use a value only when is_valid and it is not listed';
comment on column core.obs_traffic.is_valid is 'the reading as a whole counts: natural key present, site and device in the catalogue, not in the future, no device fault flag';
comment on column core.obs_traffic.invalid_columns is 'value columns a value-level expectation invalidated (sorted; null when none; why: failed_expectations and dq.flagged_readings); KPIs use a value only when is_valid and it is not listed';

-- What each flag invalidated. Flags stored before this migration all invalidated their
-- reading, so they are 'reading'.
alter table dq.flagged_readings add column scope varchar default 'reading';
alter table dq.flagged_readings add column invalidated_columns varchar[];
comment on table dq.flagged_readings is 'one row per flagged reading x failed expectation (natural key feed, site_id, device_id, lane, observed_at); the reading stays in core, with is_valid = false when scope = ''reading'', else with invalidated_columns in its invalid_columns';
comment on column dq.flagged_readings.scope is '''reading'': the failure invalidates the whole reading; ''value'': only invalidated_columns';
comment on column dq.flagged_readings.invalidated_columns is 'value columns this failure invalidated (empty when scope = ''reading'': then all of them)';

-- Readings of a load run valid as a whole with some value invalidated (a subset of flagged).
alter table dq.batch_counts add column partly_valid bigint default 0;
comment on column dq.batch_counts.partly_valid is 'readings stored valid as a whole with at least one value invalidated (counted in flagged, not in accepted_valid)';

-- Per value column and site-day: values received, valid, invalidated by a value check or by a
-- whole-reading failure (recomputed with dq.site_day_completeness).
create table dq.site_day_values (
    feed varchar not null,
    site_id varchar not null,
    local_date date not null,
    column_name varchar not null,
    received_values bigint not null,
    valid_values bigint not null,
    invalid_value_check bigint not null,
    invalid_reading bigint not null,
    computed_at timestamptz not null
);
comment on table dq.site_day_values is 'one row per (feed, site_id, local_date, value column) with data: non-null values received, valid (is_valid and not invalidated), invalidated by a value-level check, and in readings invalid as a whole';
