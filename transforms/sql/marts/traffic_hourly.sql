-- kpi.traffic_hourly for $start_date..$end_date: per scope (county, old_town /
-- other_districts, each district) and local hour, the VKT-weighted TTI of the detectors, the TPI
-- (piecewise linear in e = TTI - 1 through ref.tpi_mapping, capped at its last point) and level.
delete from kpi.traffic_hourly where local_date between $start_date and $end_date;

insert into kpi.traffic_hourly
with
detector_hours as (
    select *
    from int.traffic_hourly_detector
    where local_date between $start_date and $end_date
),

mapping as (
    select
        extra_time_ratio as e0,
        tpi as t0,
        lead(extra_time_ratio) over (order by extra_time_ratio) as e1,
        lead(tpi) over (order by extra_time_ratio) as t1
    from ref.tpi_mapping
),

levels as (
    select *, tpi_to = max(tpi_to) over () as is_top
    from ref.tpi_levels
),

peaks as (
    select period, start_hour, end_hour
    from ref.peak_hours
),

scoped as (
    select
        local_date,
        hour_start,
        case
            when grouping(district) = 0 then district
            when grouping(is_old_town) = 0
                then case when is_old_town then 'old_town' else 'other_districts' end
            else 'county'
        end as scope,
        count(*)::integer as n_detectors,
        sum(volume_veh::decimal(38, 4))::double as volume_veh,
        sum(vkt::decimal(38, 4))::double as vkt,
        -- exact decimal sums: the same data always gives the same TTI
        round(
            sum(tti::decimal(18, 4) * vkt::decimal(18, 4))
            filter (where tti is not null and vkt > 0)::double
            / sum(vkt::decimal(18, 4)) filter (where tti is not null and vkt > 0)::double,
            4
        ) as tti
    from detector_hours
    group by grouping sets (
        (local_date, hour_start), (local_date, hour_start, district),
        (local_date, hour_start, is_old_town)
    )
),

with_tpi as (
    select
        s.*,
        round(
            case
                when s.tti is null then null
                when s.tti - 1 >= (select max(mapping.e0) from mapping)
                    then (select max(mapping.t0) from mapping)
                else m.t0 + (m.t1 - m.t0) * (s.tti - 1 - m.e0) / (m.e1 - m.e0)
            end,
            2
        ) as tpi
    from scoped as s
    left join mapping as m on s.tti - 1 >= m.e0 and s.tti - 1 < m.e1
)

select
    t.scope,
    t.local_date,
    t.hour_start,
    t.hour_start + interval 1 hour as hour_end,
    p.period as peak_period,
    t.n_detectors,
    t.volume_veh,
    t.vkt,
    t.tti,
    t.tpi,
    l.level_no as tpi_level_no,
    l.level_code as tpi_level,
    l.level_zh as tpi_level_zh,
    now() as computed_at
from with_tpi as t
left join levels as l
    on t.tpi >= l.tpi_from and (t.tpi < l.tpi_to or (l.is_top and t.tpi <= l.tpi_to))
left join peaks as p
    on hour(t.hour_start) >= p.start_hour and hour(t.hour_start) < p.end_hour;
