-- The alert store (SQLite, WAL mode): idempotent, run at every start of the service.

-- alerts: one row per alert episode of (kind, site_id), from its raise to its clear. Times are
-- UTC ISO 8601 text; started_at / cleared_at are data times (the readings'), raised_at the clock.
create table if not exists alerts (
    alert_id text primary key,
    kind text not null,
    site_id text not null,
    level text not null,
    level_no integer not null,
    value real not null,
    unit text not null,
    threshold real not null,
    started_at text not null,
    updated_at text not null,
    cleared_at text,
    peak_value real,
    channel text,
    raised_at text not null
);

-- At most one open alert per (kind, site): the retained topic holds one message.
create unique index if not exists alerts_one_open
on alerts (kind, site_id)
where cleared_at is null;

create index if not exists alerts_by_started_at on alerts (started_at);

-- alert_changes: one row per change of an alert (raise, upgrade, downgrade, clear).
create table if not exists alert_changes (
    change_id integer primary key,
    alert_id text not null references alerts (alert_id),
    action text not null,
    level text not null,
    level_no integer not null,
    value real not null,
    threshold real not null,
    changed_at text not null,
    recorded_at text not null
);

create index if not exists alert_changes_by_alert on alert_changes (alert_id);

-- engine_state: one row (checkpoint_id 1), the rules' state after the last evaluated batch
-- (debounce counts, AQI hours in progress, flat-line runs, clocks), pickled by alerts.rules.
-- Written before the batch's messages are acknowledged, so a restart resumes where it stopped.
create table if not exists engine_state (
    checkpoint_id integer primary key check (checkpoint_id = 1),
    saved_at text not null,
    state blob not null
);
