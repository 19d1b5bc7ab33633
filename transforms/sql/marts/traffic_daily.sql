-- kpi.traffic_daily for $start_date..$end_date: peak-hour TPI = the TPI of the VKT-weighted
-- TTI over the peak hours and the scope's detectors (standards §6: sum(TTI x VKT) / sum(VKT), then
-- the TPI mapping; AM and PM separately too), hours whose TPI is moderate or heavy, detector-hours
-- at moderate or heavy congestion level, volume, VKT and coverage (valid lane readings received
-- over expected, every catalogue detector of the scope counted).
delete from kpi.traffic_daily where local_date between $start_date and $end_date;

insert into kpi.traffic_daily
with
hours as (
    select *
    from kpi.traffic_hourly
    where local_date between $start_date and $end_date
),

detector_hours as (
    select *
    from int.traffic_hourly_detector
    where local_date between $start_date and $end_date
),

detectors as (
    select
        site_id,
        district,
        is_old_town,
        (lanes * len(device_ids) * 86400 // period_s)::integer as expected_rows
    from core.dim_site
    where kind = 'traffic_detector'
),

levels as (
    select *, tpi_to = max(tpi_to) over () as is_top
    from ref.tpi_levels
),

mapping as (
    select
        extra_time_ratio as e0,
        tpi as t0,
        lead(extra_time_ratio) over (order by extra_time_ratio) as e1,
        lead(tpi) over (order by extra_time_ratio) as t1
    from ref.tpi_mapping
),

peak_detector_hours as (
    select h.*, p.period as peak_period
    from detector_hours as h
    inner join ref.peak_hours as p
        on hour(h.hour_start) >= p.start_hour and hour(h.hour_start) < p.end_hour
    where h.tti is not null and h.vkt > 0
),

-- VKT-weighted TTI of the peak hours, all peaks and AM / PM (exact decimal sums, as hourly).
peak_tti as (
    select
        local_date,
        case
            when grouping(district) = 0 then district
            when grouping(is_old_town) = 0
                then case when is_old_town then 'old_town' else 'other_districts' end
            else 'county'
        end as scope,
        round(
            sum(tti::decimal(18, 4) * vkt::decimal(18, 4))::double
            / sum(vkt::decimal(18, 4))::double,
            4
        ) as peak_tti,
        round(
            sum(tti::decimal(18, 4) * vkt::decimal(18, 4)) filter (where peak_period = 'am')::double
            / sum(vkt::decimal(18, 4)) filter (where peak_period = 'am')::double,
            4
        ) as am_peak_tti,
        round(
            sum(tti::decimal(18, 4) * vkt::decimal(18, 4)) filter (where peak_period = 'pm')::double
            / sum(vkt::decimal(18, 4)) filter (where peak_period = 'pm')::double,
            4
        ) as pm_peak_tti
    from peak_detector_hours
    group by grouping sets ((local_date), (local_date, district), (local_date, is_old_town))
),

peak_tpi as (
    select
        t.local_date,
        t.scope,
        u.peak_period,
        -- TTI -> TPI exactly as traffic_hourly (piecewise linear in e, capped, 2 decimals)
        round(
            case
                when u.tti is null then null
                when u.tti - 1 >= (select max(mapping.e0) from mapping)
                    then (select max(mapping.t0) from mapping)
                else m.t0 + (m.t1 - m.t0) * (u.tti - 1 - m.e0) / (m.e1 - m.e0)
            end,
            2
        ) as tpi
    from peak_tti as t
    cross join
        lateral (
            values ('all', t.peak_tti), ('am', t.am_peak_tti), ('pm', t.pm_peak_tti)
        ) as u (peak_period, tti)
    left join mapping as m on u.tti - 1 >= m.e0 and u.tti - 1 < m.e1
),

peak_scoped as (
    select
        local_date,
        scope,
        any_value(tpi) filter (where peak_period = 'all') as peak_tpi,
        any_value(tpi) filter (where peak_period = 'am') as am_peak_tpi,
        any_value(tpi) filter (where peak_period = 'pm') as pm_peak_tpi
    from peak_tpi
    group by local_date, scope
),

days as (
    select unnest(generate_series($start_date::date, $end_date::date, interval 1 day))::date
        as local_date
),

detector_days as (
    select
        d.local_date,
        t.site_id,
        t.district,
        t.is_old_town,
        t.expected_rows,
        -- capped per detector-hour: extra readings of one hour never fill another's gap
        coalesce(sum(least(h.n_rows, h.expected_rows)), 0) as n_rows,
        count(*) filter (where h.congestion_level_no >= 4) as congested_hours
    from days as d
    cross join detectors as t
    left join detector_hours as h on t.site_id = h.site_id and d.local_date = h.local_date
    group by all
),

detector_scoped as (
    select
        local_date,
        case
            when grouping(district) = 0 then district
            when grouping(is_old_town) = 0
                then case when is_old_town then 'old_town' else 'other_districts' end
            else 'county'
        end as scope,
        sum(congested_hours)::integer as detector_hours_moderate_or_heavy,
        round(least(100.0, 100.0 * sum(n_rows) / sum(expected_rows)), 1) as coverage_pct
    from detector_days
    group by grouping sets ((local_date), (local_date, district), (local_date, is_old_town))
),

hour_scoped as (
    select
        local_date,
        scope,
        -- means of 2-decimal TPIs summed exactly (a recomputation never flips a last digit)
        round(avg(tpi::decimal(18, 2)), 2) as day_mean_tpi,
        max(tpi) as max_hour_tpi,
        count(*) filter (where tpi_level_no >= 4)::integer as hours_moderate_or_heavy,
        sum(volume_veh::decimal(38, 4))::double as volume_veh,
        sum(vkt::decimal(38, 4))::double as vkt
    from hours
    group by local_date, scope
)

select
    d.local_date,
    d.scope,
    p.peak_tpi,
    l.level_code as peak_level,
    l.level_zh as peak_level_zh,
    p.am_peak_tpi,
    p.pm_peak_tpi,
    h.day_mean_tpi,
    h.max_hour_tpi,
    coalesce(h.hours_moderate_or_heavy, 0) as hours_moderate_or_heavy,
    d.detector_hours_moderate_or_heavy,
    coalesce(h.volume_veh, 0) as volume_veh,
    coalesce(h.vkt, 0) as vkt,
    d.coverage_pct,
    now() as computed_at
from detector_scoped as d
left join hour_scoped as h on d.local_date = h.local_date and d.scope = h.scope
left join peak_scoped as p on d.local_date = p.local_date and d.scope = p.scope
left join levels as l
    on p.peak_tpi >= l.tpi_from and (p.peak_tpi < l.tpi_to or (l.is_top and p.peak_tpi <= l.tpi_to));
