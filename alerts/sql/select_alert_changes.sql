-- The changes of one alert, in order.
with changes_imported as (
    select * from alert_changes
)

select alert_id, action, level, level_no, value, threshold, changed_at, recorded_at
from changes_imported
where alert_id = $alert_id
order by change_id;
