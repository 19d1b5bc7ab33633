-- One alert's current state: a new episode is inserted, a known one (same id) updated.
insert into alerts (
    alert_id, kind, site_id, level, level_no, value, unit, threshold,
    started_at, updated_at, cleared_at, peak_value, channel, raised_at
)
values (
    $alert_id, $kind, $site_id, $level, $level_no, $value, $unit, $threshold,
    $started_at, $updated_at, $cleared_at, $peak_value, $channel, $recorded_at
)
on conflict (alert_id) do update set
    level = excluded.level,
    level_no = excluded.level_no,
    value = excluded.value,
    threshold = excluded.threshold,
    updated_at = excluded.updated_at,
    cleared_at = excluded.cleared_at,
    peak_value = excluded.peak_value,
    channel = excluded.channel;
