-- Data quality per (local_date, feed, site): readings expected, received and accepted
-- (dq.site_day_completeness), readings flagged by expectation (dq.flagged_readings), messages
-- quarantined by reason (dq.quarantine, by received day), silent (nothing received) and
-- flat-lined (a flatline_* expectation failed) sensors.
with completeness as (
    select * from dq.site_day_completeness
),

flagged as (
    select * from dq.flagged_readings
),

quarantined as (
    select * from dq.quarantine
),

flagged_by_expectation as (
    select local_date, feed, site_id, expectation, count(distinct(device_id, lane, observed_at)) as n
    from flagged
    where
        local_date between $start_date and $end_date
        and ($feed is null or feed = $feed)
        and ($site_id is null or site_id = $site_id)
    group by all
),

flagged_per_site as (
    select
        local_date, feed, site_id,
        list({ 'expectation': expectation, 'readings': n } order by expectation) as flagged,
        bool_or(starts_with(expectation, 'flatline_')) as is_flatlined
    from flagged_by_expectation
    group by all
),

quarantined_by_reason as (
    select received_date as local_date, feed, site_id, reason, count(*) as n
    from quarantined
    where
        received_date between $start_date and $end_date
        and ($feed is null or feed = $feed)
        and ($site_id is null or site_id = $site_id)
    group by all
),

quarantined_per_site as (
    select
        local_date, feed, site_id,
        list({ 'reason': reason, 'messages': n } order by reason) as quarantined
    from quarantined_by_reason
    group by all
),

days as (
    select
        local_date, feed, site_id, expected_readings, received_readings, valid_readings,
        completeness_pct, valid_pct, last_observed_at
    from completeness
    where
        local_date between $start_date and $end_date
        and ($feed is null or feed = $feed)
        and ($site_id is null or site_id = $site_id)
)

select
    local_date, feed, site_id,
    d.expected_readings, d.received_readings, d.valid_readings as accepted_readings,
    d.completeness_pct, d.valid_pct, d.last_observed_at,
    coalesce(f.flagged, []) as flagged,
    coalesce(q.quarantined, []) as quarantined,
    coalesce(d.received_readings = 0, false) as is_silent,
    coalesce(f.is_flatlined, false) as is_flatlined
from days as d
full outer join flagged_per_site as f using (local_date, feed, site_id)
full outer join quarantined_per_site as q using (local_date, feed, site_id)
order by local_date desc, feed asc, site_id asc nulls first
limit $limit offset $offset;
