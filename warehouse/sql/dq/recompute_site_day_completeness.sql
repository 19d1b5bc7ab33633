-- Recompute dq.site_day_completeness and dq.site_day_values for the (feed, local_date) pairs of
-- load batches not yet recorded. Expected readings per day = devices x lanes x 86400 / period_s
-- of the catalogue; valid_readings = readings that count as a whole (is_valid; single values
-- they carry may still be invalid: dq.site_day_values has the per-value counts).
create or replace temp table days_todo as
select distinct
    feed,
    unnest(changed_dates) as local_date
from meta.load_batches
where dq_recorded_at is null;

delete from dq.site_day_completeness as d
using days_todo as t
where d.feed = t.feed and d.local_date = t.local_date;

insert into dq.site_day_completeness by name
with sites as (
    select
        site_id,
        feed,
        len(device_ids) * coalesce(lanes, 1) * (86400 // period_s) as expected_readings
    from core.dim_site
),

observed as (
    select 'air' as feed, site_id, local_date, is_valid, observed_at
    from core.obs_air
    where local_date in (select t.local_date from days_todo as t where t.feed = 'air')
    union all
    select 'water' as feed, site_id, local_date, is_valid, observed_at
    from core.obs_water
    where local_date in (select t.local_date from days_todo as t where t.feed = 'water')
    union all
    select 'waterlogging' as feed, site_id, local_date, is_valid, observed_at
    from core.obs_waterlogging
    where local_date in (select t.local_date from days_todo as t where t.feed = 'waterlogging')
    union all
    select 'traffic' as feed, site_id, local_date, is_valid, observed_at
    from core.obs_traffic
    where local_date in (select t.local_date from days_todo as t where t.feed = 'traffic')
),

per_site_day as (
    select
        feed,
        site_id,
        local_date,
        count(*) as received_readings,
        count(*) filter (where is_valid) as valid_readings,
        max(observed_at) as last_observed_at
    from observed
    group by all
)

select
    t.feed,
    s.site_id,
    t.local_date,
    s.expected_readings,
    coalesce(o.received_readings, 0) as received_readings,
    coalesce(o.valid_readings, 0) as valid_readings,
    round(100.0 * coalesce(o.received_readings, 0) / s.expected_readings, 2) as completeness_pct,
    round(100.0 * coalesce(o.valid_readings, 0) / s.expected_readings, 2) as valid_pct,
    o.last_observed_at,
    now() as computed_at
from days_todo as t
inner join sites as s on t.feed = s.feed
left join per_site_day as o
    on t.feed = o.feed and s.site_id = o.site_id and t.local_date = o.local_date;

-- Per value column: non-null values received, valid, invalidated by a value-level check (in a
-- reading that counts otherwise) or by a whole-reading failure. received = the other three.
-- invalid_columns is null when no value of the reading was invalidated.
delete from dq.site_day_values as d
using days_todo as t
where d.feed = t.feed and d.local_date = t.local_date;

insert into dq.site_day_values by name
with air as (
    unpivot (
        select
            site_id, local_date, is_valid, invalid_columns,
            pm25_ugm3, pm10_ugm3, so2_ugm3, no2_ugm3, co_mgm3, o3_ugm3,
            temp_c, rh_pct, wind_ms, wind_deg, pressure_hpa
        from core.obs_air
        where local_date in (select t.local_date from days_todo as t where t.feed = 'air')
    )
    on pm25_ugm3, pm10_ugm3, so2_ugm3, no2_ugm3, co_mgm3, o3_ugm3,
    temp_c, rh_pct, wind_ms, wind_deg, pressure_hpa
    into name column_name value v
),

water as (
    unpivot (
        select
            site_id, local_date, is_valid, invalid_columns,
            water_temp_c, ph, do_mgl, codmn_mgl, nh3n_mgl, tp_mgl, tn_mgl,
            conductivity_uscm, turbidity_ntu
        from core.obs_water
        where local_date in (select t.local_date from days_todo as t where t.feed = 'water')
    )
    on water_temp_c, ph, do_mgl, codmn_mgl, nh3n_mgl, tp_mgl, tn_mgl,
    conductivity_uscm, turbidity_ntu
    into name column_name value v
),

waterlogging as (
    unpivot (
        select site_id, local_date, is_valid, invalid_columns, depth_cm, rain_mm
        from core.obs_waterlogging
        where
            local_date in (
                select t.local_date from days_todo as t where t.feed = 'waterlogging'
            )
    )
    on depth_cm, rain_mm
    into name column_name value v
),

traffic as (
    unpivot (
        select site_id, local_date, is_valid, invalid_columns, volume_veh, speed_kmh, occupancy_pct
        from core.obs_traffic
        where local_date in (select t.local_date from days_todo as t where t.feed = 'traffic')
    )
    on volume_veh, speed_kmh, occupancy_pct
    into name column_name value v
),

all_values as (
    select 'air' as feed, site_id, local_date, column_name, is_valid, invalid_columns from air
    union all
    select 'water' as feed, site_id, local_date, column_name, is_valid, invalid_columns
    from water
    union all
    select 'waterlogging' as feed, site_id, local_date, column_name, is_valid, invalid_columns
    from waterlogging
    union all
    select 'traffic' as feed, site_id, local_date, column_name, is_valid, invalid_columns
    from traffic
)

select
    feed,
    site_id,
    local_date,
    column_name,
    count(*) as received_values,
    count(*) filter (
        where is_valid and list_contains(invalid_columns, column_name) is not true
    ) as valid_values,
    count(*) filter (
        where is_valid and list_contains(invalid_columns, column_name)
    ) as invalid_value_check,
    count(*) filter (where not is_valid) as invalid_reading,
    now() as computed_at
from all_values
group by all;

update meta.load_batches
set dq_recorded_at = now()
where dq_recorded_at is null;
