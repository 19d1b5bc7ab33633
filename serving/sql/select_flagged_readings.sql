-- Flagged readings (one row per reading x failed expectation), paged.
with flagged as (
    select * from dq.flagged_readings
)

select
    local_date, feed, site_id, device_id, lane, observed_at, expectation, column_name,
    observed_value, observed_text, scope, array_to_string(invalidated_columns, '|') as invalidated_columns,
    validation_run_id, flagged_at
from flagged
where
    local_date between $start_date and $end_date
    and ($feed is null or feed = $feed)
    and ($site_id is null or site_id = $site_id)
    and ($expectation is null or expectation = $expectation)
order by observed_at desc, feed asc, site_id asc, device_id asc, expectation asc, column_name asc
limit $limit offset $offset;
