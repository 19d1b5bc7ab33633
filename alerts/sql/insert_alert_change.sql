insert into alert_changes (
    alert_id, action, level, level_no, value, threshold, changed_at, recorded_at
)
values (
    $alert_id, $action, $level, $level_no, $value, $threshold, $updated_at, $recorded_at
);
