-- kpi.kpi_daily_traffic for $start_date..$end_date: peak-hour TPI = mean of the hourly TPIs of
-- the peak hours (AM and PM separately too), hours whose TPI is moderate or heavy, detector-hours
-- at moderate or heavy congestion level, volume, VKT and coverage (valid lane readings received
-- over expected, every catalogue detector of the scope counted).
delete from kpi.kpi_daily_traffic where local_date between $start_date and $end_date;

insert into kpi.kpi_daily_traffic
with
hours as (
    select *
    from kpi.kpi_hourly_traffic
    where local_date between $start_date and $end_date
),

detector_hours as (
    select *
    from int.int_traffic_detector_hourly
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
        coalesce(sum(h.n_rows), 0) as n_rows,
        count(*) filter (where h.congestion_level_no >= 4) as congested_hours
    from days as d
    cross join detectors as t
    left join detector_hours as h on h.site_id = t.site_id and h.local_date = d.local_date
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
        round(avg(tpi::decimal(18, 2)) filter (where peak_period is not null), 2) as peak_tpi,
        round(avg(tpi::decimal(18, 2)) filter (where peak_period = 'am'), 2) as am_peak_tpi,
        round(avg(tpi::decimal(18, 2)) filter (where peak_period = 'pm'), 2) as pm_peak_tpi,
        round(avg(tpi::decimal(18, 2)), 2) as day_mean_tpi,
        max(tpi) as max_hour_tpi,
        count(*) filter (where tpi_level_no >= 4)::integer as hours_moderate_or_heavy,
        sum(volume_veh) as volume_veh,
        sum(vkt::decimal(38, 4))::double as vkt
    from hours
    group by local_date, scope
)

select
    d.local_date,
    d.scope,
    h.peak_tpi,
    l.level_code as peak_level,
    l.level_zh as peak_level_zh,
    h.am_peak_tpi,
    h.pm_peak_tpi,
    h.day_mean_tpi,
    h.max_hour_tpi,
    coalesce(h.hours_moderate_or_heavy, 0) as hours_moderate_or_heavy,
    d.detector_hours_moderate_or_heavy,
    coalesce(h.volume_veh, 0) as volume_veh,
    coalesce(h.vkt, 0) as vkt,
    d.coverage_pct,
    now() as computed_at
from detector_scoped as d
left join hour_scoped as h on h.local_date = d.local_date and h.scope = d.scope
left join levels as l
    on h.peak_tpi >= l.tpi_from and (h.peak_tpi < l.tpi_to or (l.is_top and h.peak_tpi <= l.tpi_to));
