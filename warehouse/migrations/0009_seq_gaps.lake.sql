-- DuckLake variant of 0009_seq_gaps.sql, run instead of it on a lake (common/migrate.py):
-- the same table without the check on kind (DuckLake
-- has no CHECK constraints); warehouse/sql/dq/recompute_seq_gaps.sql writes only those three kinds.
-- Sequence anomalies per device (docs/feeds.md `seq`, docs/data_quality.md): the contract's
-- seq is a per-device counter, +1 per reading, so a jump forward reveals readings lost
-- upstream. Kept current by the load (warehouse/seq_gaps.py, sql/dq/seq_gaps.sql).
-- No primary key: lane is null outside traffic; the load keeps one row per natural key
-- (feed, site_id, device_id, lane_after, observed_at_after), as the merge does for core.

create table dq.seq_gaps (
    feed varchar not null,
    site_id varchar not null,
    device_id varchar not null,
    kind varchar not null,
    seq_before bigint not null,
    seq_after bigint not null,
    seq_from bigint,
    seq_to bigint,
    missing_count bigint not null,
    observed_at_before timestamptz not null,
    observed_at_after timestamptz not null,
    lane_before smallint,
    lane_after smallint,
    local_date date not null,
    load_run_id varchar not null,
    validation_run_id varchar not null,
    detected_at timestamptz not null
);
comment on table dq.seq_gaps is 'one row per (feed, site_id, device_id, anomaly) between two consecutive stored readings of a device (ordered by observed_at, seq, lane; natural key feed, site_id, device_id, lane_after, observed_at_after): kind gap (seq jumped forward by more than 1; seq_from..seq_to missing, missing_count of them), reset (seq went back: device reboot, not loss) or repeat (same seq on another reading); local_date of the later reading; the load that first saw it';
