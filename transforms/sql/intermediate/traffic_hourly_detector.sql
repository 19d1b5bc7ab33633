-- int.traffic_hourly_detector for $start_date..$end_date. observed_at ends the reading's
-- interval (contract v1): a reading covers (observed_at - period_s, observed_at] and belongs to
-- the local hour holding that end, so a 5-minute reading stamped 09:00 counts in 08:00-09:00
-- (and one stamped 00:00 in the previous day's last hour). Lanes are aggregated: volume summed, speed = volume-weighted
-- harmonic mean of the lane/interval mean speeds (space-mean speed, the one travel times follow),
-- rounded to 0.01 km/h before the congestion level and TTI are derived from it. Sums run in
-- decimal so a recomputation gives the very same numbers (no float summation-order noise).
delete from int.traffic_hourly_detector where local_date between $start_date and $end_date;

insert into int.traffic_hourly_detector
with
obs as (
    select
        site_id,
        local_date,
        date_trunc('hour', timezone($tz, observed_at) - interval 1 microsecond) as hour_start,
        -- validity per value: a value a check invalidated is null (not summed, not a speed
        -- weight); the reading still counts in n_rows (is_valid = the reading as a whole)
        if(list_contains(invalid_columns, 'volume_veh'), null, volume_veh) as volume_veh,
        if(list_contains(invalid_columns, 'speed_kmh'), null, speed_kmh) as speed_kmh,
        if(list_contains(invalid_columns, 'occupancy_pct'), null, occupancy_pct) as occupancy_pct
    from core.obs_traffic
    -- readings stamped 00:00 of the next day still belong to $end_date's last hour
    where is_valid and local_date between $start_date and $end_date + 1
),

obs_in_range as (
    select * replace (hour_start::date as local_date)
    from obs
    where hour_start::date between $start_date and $end_date
),

detectors as (
    select
        site_id,
        district,
        is_old_town,
        road_class,
        segment_length_km,
        free_flow_kmh,
        lanes,
        period_s,
        len(device_ids) as n_devices
    from core.dim_site
    where kind = 'traffic_detector'
),

levels as (
    select *
    from ref.traffic_congestion_levels
),

hourly as (
    select
        site_id,
        local_date,
        hour_start,
        count(*)::integer as n_rows,
        coalesce(sum(volume_veh::decimal(38, 4)), 0)::double as volume_veh,
        sum(volume_veh::decimal(18, 4)) filter (where volume_veh > 0 and speed_kmh > 0)
            as speed_volume,
        sum(
            case
                when volume_veh > 0 and speed_kmh > 0
                    then (volume_veh / speed_kmh)::decimal(38, 12)
            end
        ) as vehicle_hours_per_km,
        avg(occupancy_pct::decimal(18, 4)) as occupancy_pct
    from obs_in_range
    group by site_id, local_date, hour_start
),

speeds as (
    select
        h.*,
        d.district,
        d.is_old_town,
        d.road_class,
        d.segment_length_km,
        d.free_flow_kmh,
        (d.lanes * d.n_devices * 3600 // d.period_s)::integer as expected_rows,
        round(h.speed_volume::double / h.vehicle_hours_per_km::double, 2) as speed_kmh
    from hourly as h
    inner join detectors as d on h.site_id = d.site_id
)

select
    s.site_id,
    s.local_date,
    s.hour_start,
    s.hour_start + interval 1 hour as hour_end,
    s.district,
    s.is_old_town,
    s.road_class,
    s.n_rows,
    s.expected_rows,
    s.volume_veh,
    s.speed_kmh,
    round(s.occupancy_pct, 2) as occupancy_pct,
    l.level_no as congestion_level_no,
    l.level_code as congestion_level,
    l.level_zh as congestion_level_zh,
    round(greatest(s.free_flow_kmh / s.speed_kmh, 1.0), 4) as tti,
    s.volume_veh * s.segment_length_km as vkt,
    now() as computed_at
from speeds as s
left join levels as l
    on
        s.road_class = l.road_class
        and (l.speed_gt_kmh is null or s.speed_kmh > l.speed_gt_kmh)
        and (l.speed_le_kmh is null or s.speed_kmh <= l.speed_le_kmh);
