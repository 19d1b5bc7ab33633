-- DuckLake variant of 0004_dq.sql, run instead of it on a lake (common/migrate.py):
-- the same tables without primary keys (DuckLake has
-- none): key columns stay not null, and the writers keep one row per key.
-- Data-quality results: GX validation runs, flagged readings, quarantine, batch counts,
-- per-site-day completeness and freshness.

create table dq.validation_runs (
    validation_run_id varchar not null,
    load_run_id varchar not null,
    feed varchar not null,
    suite_name varchar not null,
    files varchar[] not null,
    rows bigint not null,
    success boolean not null,
    evaluated_expectations integer not null,
    successful_expectations integer not null,
    unsuccessful_expectations integer not null,
    success_percent double,
    statistics_json json not null,
    results_json json not null,
    batch_checks_json json not null,
    data_docs_url varchar,
    started_at timestamptz not null,
    ended_at timestamptz not null
);
comment on table dq.validation_runs is 'one row per GX validation run (one feed batch): the files, row count, outcome per expectation (results_json) and the Data Docs page';

create table dq.flagged_readings (
    feed varchar not null,
    site_id varchar,
    device_id varchar,
    lane smallint,
    observed_at timestamptz,
    local_date date,
    expectation varchar not null,
    column_name varchar,
    observed_value double,
    observed_text varchar,
    validation_run_id varchar not null,
    flagged_at timestamptz not null
);
comment on table dq.flagged_readings is 'one row per flagged reading x failed expectation (natural key feed, site_id, device_id, lane, observed_at); the reading itself stays in core with is_valid = false';

create table dq.quarantine (
    received_at timestamptz not null,
    received_date date not null,
    topic varchar not null,
    feed varchar,
    site_id varchar,
    reason varchar not null,
    detail varchar not null,
    reading_index integer,
    payload_excerpt varchar not null,
    payload_bytes bigint not null,
    payload_sha256 varchar not null,
    source_file varchar not null,
    load_run_id varchar not null,
    loaded_at timestamptz not null
);
comment on table dq.quarantine is 'one row per quarantined message or reading (contract breach at ingest): reason code, detail, topic and the first 512 bytes of the payload';

create table dq.batch_counts (
    load_run_id varchar not null,
    feed varchar not null,
    validation_run_id varchar,
    files integer not null,
    rows_read bigint not null,
    accepted_valid bigint not null,
    flagged bigint not null,
    duplicates_dropped bigint not null,
    revisions bigint not null,
    quarantined bigint not null,
    loaded_at timestamptz not null
);
comment on table dq.batch_counts is 'one row per (load run, feed): readings read, stored valid, flagged, exact duplicates dropped, revisions applied, quarantined records loaded';

create table dq.site_day_completeness (
    feed varchar not null,
    site_id varchar not null,
    local_date date not null,
    expected_readings bigint not null,
    received_readings bigint not null,
    valid_readings bigint not null,
    completeness_pct double not null,
    valid_pct double not null,
    last_observed_at timestamptz,
    computed_at timestamptz not null
);
comment on table dq.site_day_completeness is 'one row per (feed, site_id, local_date) of a catalogue site: expected vs received vs valid readings (expected = devices x lanes x 86400 / period_s) and the last observed_at (freshness)';
