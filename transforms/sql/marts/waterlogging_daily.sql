-- kpi.waterlogging_daily for $start_date..$end_date, county and per district. Events count on
-- the day they start (their whole duration too), the maximum depth is the day's own readings.
delete from kpi.waterlogging_daily where local_date between $start_date and $end_date;

insert into kpi.waterlogging_daily
with
points as (
    select site_id, district, period_s, len(device_ids) as n_devices
    from core.dim_site
    where kind = 'waterlogging_point'
),

events as (
    select *
    from kpi.waterlogging_events
    where local_date between $start_date and $end_date
),

-- n_valid counts filled reading slots (one period of the catalogue per device), so extra
-- off-schedule readings never lift a point past 100 % nor cover for a silent one.
readings as (
    select
        o.site_id,
        o.local_date,
        count(distinct(
            o.device_id, (epoch_us(o.observed_at) - 1) // (p.period_s * 1000000::bigint)
        )) as n_valid,
        max(o.depth_cm) as max_depth_cm
    from core.obs_waterlogging as o
    inner join points as p on o.site_id = p.site_id
    where
        o.is_valid and o.depth_cm is not null
        -- validity per value: an invalidated depth (spike, stuck gauge ...) does not count
        and list_contains(o.invalid_columns, 'depth_cm') is not true  -- null: none invalidated
        and o.local_date between $start_date and $end_date
    group by o.site_id, o.local_date
),

level_names as (
    select level_no, level_code
    from ref.waterlogging_levels
),

days as (
    select unnest(generate_series($start_date::date, $end_date::date, interval 1 day))::date
        as local_date
),

point_events as (
    select
        site_id,
        local_date,
        count(*) as n_events,
        count(*) filter (where status = 'ongoing') as n_ongoing,
        count(*) filter (where max_level_no >= 2) as n_closure_events,
        count(*) filter (where max_level_no >= 3) as n_danger_events,
        sum(duration_min::decimal(18, 2)) / 60 as waterlogged_hours,
        max(max_level_no) as max_level_no
    from events
    group by site_id, local_date
),

point_days as (
    select
        d.local_date,
        p.site_id,
        p.district,
        p.n_devices * 86400 // p.period_s as expected_readings,
        least(coalesce(r.n_valid, 0), p.n_devices * 86400 // p.period_s) as n_valid,
        r.max_depth_cm,
        coalesce(e.n_events, 0) as n_events,
        coalesce(e.n_ongoing, 0) as n_ongoing,
        coalesce(e.n_closure_events, 0) as n_closure_events,
        coalesce(e.n_danger_events, 0) as n_danger_events,
        coalesce(e.waterlogged_hours, 0) as waterlogged_hours,
        e.max_level_no
    from days as d
    cross join points as p
    left join readings as r on p.site_id = r.site_id and d.local_date = r.local_date
    left join point_events as e on p.site_id = e.site_id and d.local_date = e.local_date
),

rolled as (
    select
        local_date,
        case when grouping(district) = 1 then 'county' else district end as scope,
        count(*)::integer as n_points,
        count(*) filter (where n_valid > 0)::integer as n_points_reporting,
        count(*) filter (where n_events > 0)::integer as n_points_with_events,
        sum(n_events)::integer as n_events,
        sum(n_ongoing)::integer as n_ongoing,
        sum(n_closure_events)::integer as n_closure_events,
        sum(n_danger_events)::integer as n_danger_events,
        round(sum(waterlogged_hours::decimal(18, 6)), 2)::double as waterlogged_hours,
        max(max_depth_cm) as max_depth_cm,
        max(max_level_no) as max_level_no,
        round(least(100.0, 100.0 * sum(n_valid) / sum(expected_readings)), 1) as coverage_pct
    from point_days
    group by grouping sets ((local_date), (local_date, district))
)

select
    r.local_date,
    r.scope,
    r.n_points,
    r.n_points_reporting,
    r.n_points_with_events,
    r.n_events,
    r.n_ongoing,
    r.n_closure_events,
    r.n_danger_events,
    r.waterlogged_hours,
    r.max_depth_cm,
    n.level_code as max_level,
    r.coverage_pct,
    now() as computed_at
from rolled as r
left join level_names as n on r.max_level_no = n.level_no;
