-- Loss upstream of the broker, one row per (local_date, feed, site_id, device_id) with stored
-- readings: readings stored, readings the device's seq counter says it sent (expected_by_seq
-- = readings + missing - repeats), readings missing in gaps, resets (reboots: not loss),
-- repeats, and the list of anomalies (at most $max_listed, oldest first). An anomaly belongs
-- to the day of its later reading (dq.seq_gaps.local_date), which is a stored reading of that
-- device and day. A device of the catalogue that stored nothing has no row (see
-- /quality/days: is_silent).
with obs_air as (
    select * from core.obs_air
),

obs_water as (
    select * from core.obs_water
),

obs_waterlogging as (
    select * from core.obs_waterlogging
),

obs_traffic as (
    select * from core.obs_traffic
),

seq_gaps as (
    select * from dq.seq_gaps
),

stored as (
    select 'air' as feed, site_id, device_id, local_date, count(*) as readings
    from obs_air
    where
        local_date between $start_date and $end_date
        and ($feed is null or $feed = 'air')
        and ($site_id is null or site_id = $site_id)
    group by all
    union all
    select 'water' as feed, site_id, device_id, local_date, count(*) as readings
    from obs_water
    where
        local_date between $start_date and $end_date
        and ($feed is null or $feed = 'water')
        and ($site_id is null or site_id = $site_id)
    group by all
    union all
    select 'waterlogging' as feed, site_id, device_id, local_date, count(*) as readings
    from obs_waterlogging
    where
        local_date between $start_date and $end_date
        and ($feed is null or $feed = 'waterlogging')
        and ($site_id is null or site_id = $site_id)
    group by all
    union all
    -- the lanes of a detector share its counter: each lane's row is one reading of it
    select 'traffic' as feed, site_id, device_id, local_date, count(*) as readings
    from obs_traffic
    where
        local_date between $start_date and $end_date
        and ($feed is null or $feed = 'traffic')
        and ($site_id is null or site_id = $site_id)
    group by all
),

anomalies as (
    select
        local_date, feed, site_id, device_id,
        count(*) filter (where kind = 'gap') as gaps,
        coalesce(sum(missing_count), 0) as missing,
        count(*) filter (where kind = 'reset') as resets,
        count(*) filter (where kind = 'repeat') as repeats,
        list(
            {
                'kind': kind,
                'seq_before': seq_before,
                'seq_after': seq_after,
                'seq_from': seq_from,
                'seq_to': seq_to,
                'missing': missing_count,
                'observed_at_before': observed_at_before,
                'observed_at_after': observed_at_after,
                'lane_after': lane_after
            }
            order by observed_at_after, lane_after, kind
        ) as anomaly_list
    from seq_gaps
    where
        local_date between $start_date and $end_date
        and ($feed is null or feed = $feed)
        and ($site_id is null or site_id = $site_id)
    group by all
)

select
    local_date, feed, site_id, device_id,
    coalesce(s.readings, 0) as readings,
    coalesce(s.readings, 0) + coalesce(a.missing, 0) - coalesce(a.repeats, 0) as expected_by_seq,
    coalesce(a.missing, 0) as missing,
    coalesce(a.gaps, 0) as gaps,
    coalesce(a.resets, 0) as resets,
    coalesce(a.repeats, 0) as repeats,
    coalesce(len(a.anomaly_list), 0) as anomalies,
    coalesce(a.anomaly_list[1:$max_listed], []) as anomaly_list
from stored as s
full outer join anomalies as a using (local_date, feed, site_id, device_id)
order by local_date desc, feed asc, site_id asc, device_id asc
limit $limit offset $offset;
