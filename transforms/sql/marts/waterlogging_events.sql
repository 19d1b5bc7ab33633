-- kpi.waterlogging_events: events starting on the local days $start_date..$end_date.
-- A reading is wet when its depth is above the point's waterlogging threshold. An event starts at
-- the first wet reading and ends at the first dry reading of a dry spell that lasts at least the
-- end rule (the next wet reading comes that long after it, or the series goes on dry that long).
-- Readings are taken from the day before the range (an event already running at the start of
-- the range belongs to an earlier day) to lookahead_days after it (to close events).
delete from kpi.waterlogging_events where local_date between $start_date and $end_date;

insert into kpi.waterlogging_events
with
rules as (
    select
        max(value) filter (where param = 'end_below_minutes') as end_below_min,
        max(value) filter (where param = 'lookahead_days')::integer as lookahead_days
    from ref.waterlogging_rules
),

levels as (
    select
        max(default_cm) filter (where level_code = 'waterlogging') as waterlogging_cm,
        max(default_cm) filter (where level_code = 'closure') as closure_cm,
        max(default_cm) filter (where level_code = 'danger') as danger_cm
    from ref.waterlogging_levels
),

level_names as (
    select level_no, level_code
    from ref.waterlogging_levels
),

points as (
    select
        d.site_id,
        coalesce(d.waterlogging_cm, l.waterlogging_cm)::double as waterlogging_cm,
        coalesce(d.closure_cm, l.closure_cm)::double as closure_cm,
        coalesce(d.danger_cm, l.danger_cm)::double as danger_cm
    from core.dim_site as d
    cross join levels as l
    where d.kind = 'waterlogging_point'
),

-- The valid depth readings of the window (several devices at one point: several per instant).
readings as (
    select o.site_id, o.observed_at, o.depth_cm
    from core.obs_waterlogging as o
    where
        o.is_valid
        and o.depth_cm is not null
        -- validity per value: an invalidated depth (spike, stuck gauge ...) does not count
        and list_contains(o.invalid_columns, 'depth_cm') is not true  -- null: none invalidated
        and o.local_date between $start_date::date - 1
        and $end_date::date + (select rules.lookahead_days from rules)
),

-- Wet instants: the deepest reading at the instant is above the point's threshold. Only these
-- (a small share of the readings) go through the event windows below.
wet_instants as (
    select
        r.site_id,
        r.observed_at,
        max(r.depth_cm) as depth_cm,
        any_value(p.waterlogging_cm) as waterlogging_cm,
        any_value(p.closure_cm) as closure_cm,
        any_value(p.danger_cm) as danger_cm
    from readings as r
    inner join points as p on r.site_id = p.site_id
    where r.depth_cm > p.waterlogging_cm
    group by r.site_id, r.observed_at
),

last_reading as (
    select site_id, max(observed_at) as last_at
    from readings
    group by site_id
),

-- Each wet instant with the instant of the next reading of its point, and whether that is wet.
series as (
    select
        w.*,
        n.observed_at as next_at,
        nw.site_id is not null as next_is_wet,
        l.last_at
    from wet_instants as w
    asof left join readings as n
        on w.site_id = n.site_id and w.observed_at < n.observed_at
    left join wet_instants as nw
        on w.site_id = nw.site_id and n.observed_at = nw.observed_at
    inner join last_reading as l on w.site_id = l.site_id
),

wet as (
    select
        *,
        -- the first dry reading after this wet one (null when the next reading is wet or absent)
        case when not next_is_wet then next_at end as dry_from,
        lag(observed_at) over w as prev_wet_at,
        lag(case when not next_is_wet then next_at end) over w as prev_dry_from
    from series
    window w as (partition by site_id order by observed_at)
),

marked as (
    select
        w.*,
        case
            when w.prev_wet_at is null then 1
            when
                w.prev_dry_from is not null
                and w.observed_at - w.prev_dry_from >= to_minutes(r.end_below_min::bigint)
                then 1
            else 0
        end as is_start
    from wet as w
    cross join rules as r
),

numbered as (
    select
        *,
        sum(is_start) over (
            partition by site_id order by observed_at rows unbounded preceding
        ) as event_no
    from marked
),

ranked as (
    select
        *,
        row_number() over (
            partition by site_id, event_no order by depth_cm desc, observed_at asc
        ) as depth_rank
    from numbered
),

events as (
    select
        site_id,
        event_no,
        min(observed_at) as event_start,
        max(observed_at) as last_wet_at,
        arg_max(dry_from, observed_at) as dry_from,
        max(depth_cm) as peak_depth_cm,
        min(observed_at) filter (where depth_rank = 1) as peak_at,
        count(*)::integer as n_wet_readings,
        any_value(last_at) as last_at,
        any_value(waterlogging_cm) as waterlogging_cm,
        any_value(closure_cm) as closure_cm,
        any_value(danger_cm) as danger_cm
    from ranked
    group by site_id, event_no
),

closed as (
    select
        e.*,
        lead(e.event_start) over (partition by e.site_id order by e.event_start) as next_start,
        (
            e.dry_from is not null
            and (
                lead(e.event_start) over (partition by e.site_id order by e.event_start)
                is not null
                or e.last_at >= e.dry_from + to_minutes(r.end_below_min::bigint)
            )
        ) as is_closed
    from events as e
    cross join rules as r
),

final as (
    select
        site_id,
        -- the day of the minute the first wet reading covers (observed_at ends its period:
        -- a reading stamped 00:00:00 measured 23:59-24:00 of the day before; issue 9 item 6)
        timezone($tz, event_start - interval 1 microsecond)::date as local_date,
        event_start,
        case when is_closed then dry_from end as event_end,
        case when is_closed then 'closed' else 'ongoing' end as status,
        round(
            epoch(case when is_closed then dry_from else last_wet_at end - event_start) / 60, 2
        ) as duration_min,
        peak_depth_cm,
        peak_at,
        case when is_closed then round(epoch(dry_from - peak_at) / 60, 2) end as recession_min,
        case
            when peak_depth_cm > danger_cm then 3
            when peak_depth_cm > closure_cm then 2
            else 1
        end as max_level_no,
        waterlogging_cm,
        closure_cm,
        danger_cm,
        n_wet_readings,
        last_wet_at
    from closed
)

select
    f.site_id,
    f.local_date,
    f.event_start,
    f.event_end,
    f.status,
    f.duration_min,
    f.peak_depth_cm,
    f.peak_at,
    f.recession_min,
    n.level_code as max_level,
    f.max_level_no,
    f.waterlogging_cm,
    f.closure_cm,
    f.danger_cm,
    f.n_wet_readings,
    f.last_wet_at,
    now() as computed_at
from final as f
left join level_names as n on f.max_level_no = n.level_no
where f.local_date between $start_date and $end_date;
