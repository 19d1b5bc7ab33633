-- Observation tables, one per feed, in two layers with the same columns.
-- staging.obs_{feed}: the batch being loaded (filled and emptied inside one load transaction).
-- core.obs_{feed}: every stored reading, valid or flagged; a revision (same key, new content)
-- replaces the earlier row (latest received_at wins). KPIs read only is_valid rows.
-- Times are UTC; local_date is the Asia/Shanghai natural day of observed_at.

create table staging.obs_air (
    site_id varchar not null,
    device_id varchar not null,
    observed_at timestamptz not null,
    local_date date not null,
    period_s integer not null,
    seq bigint not null,
    flags varchar not null,
    pm25_ugm3 double,
    pm10_ugm3 double,
    so2_ugm3 double,
    no2_ugm3 double,
    co_mgm3 double,
    o3_ugm3 double,
    temp_c double,
    rh_pct double,
    wind_ms double,
    wind_deg double,
    pressure_hpa double,
    is_valid boolean not null,
    failed_expectations varchar not null,
    received_at timestamptz not null,
    content_hash varchar not null,
    source_file varchar not null,
    validation_run_id varchar not null,
    loaded_at timestamptz not null
);
comment on table staging.obs_air is 'one row per (site_id, device_id, observed_at) reading in the batch being loaded (empty between loads); is_valid = passed every row-level expectation and carries no device flag';

create table core.obs_air (
    site_id varchar not null,
    device_id varchar not null,
    observed_at timestamptz not null,
    local_date date not null,
    period_s integer not null,
    seq bigint not null,
    flags varchar not null,
    pm25_ugm3 double,
    pm10_ugm3 double,
    so2_ugm3 double,
    no2_ugm3 double,
    co_mgm3 double,
    o3_ugm3 double,
    temp_c double,
    rh_pct double,
    wind_ms double,
    wind_deg double,
    pressure_hpa double,
    is_valid boolean not null,
    failed_expectations varchar not null,
    received_at timestamptz not null,
    content_hash varchar not null,
    source_file varchar not null,
    validation_run_id varchar not null,
    loaded_at timestamptz not null
);
comment on table core.obs_air is 'one row per (site_id, device_id, observed_at) stored reading, valid or flagged; is_valid = passed every row-level expectation and carries no device flag';

create table staging.obs_water (
    site_id varchar not null,
    device_id varchar not null,
    observed_at timestamptz not null,
    local_date date not null,
    period_s integer not null,
    seq bigint not null,
    flags varchar not null,
    water_temp_c double,
    ph double,
    do_mgl double,
    codmn_mgl double,
    nh3n_mgl double,
    tp_mgl double,
    tn_mgl double,
    conductivity_uscm double,
    turbidity_ntu double,
    is_valid boolean not null,
    failed_expectations varchar not null,
    received_at timestamptz not null,
    content_hash varchar not null,
    source_file varchar not null,
    validation_run_id varchar not null,
    loaded_at timestamptz not null
);
comment on table staging.obs_water is 'one row per (site_id, device_id, observed_at) reading in the batch being loaded (empty between loads); is_valid = passed every row-level expectation and carries no device flag';

create table core.obs_water (
    site_id varchar not null,
    device_id varchar not null,
    observed_at timestamptz not null,
    local_date date not null,
    period_s integer not null,
    seq bigint not null,
    flags varchar not null,
    water_temp_c double,
    ph double,
    do_mgl double,
    codmn_mgl double,
    nh3n_mgl double,
    tp_mgl double,
    tn_mgl double,
    conductivity_uscm double,
    turbidity_ntu double,
    is_valid boolean not null,
    failed_expectations varchar not null,
    received_at timestamptz not null,
    content_hash varchar not null,
    source_file varchar not null,
    validation_run_id varchar not null,
    loaded_at timestamptz not null
);
comment on table core.obs_water is 'one row per (site_id, device_id, observed_at) stored reading, valid or flagged; is_valid = passed every row-level expectation and carries no device flag';

create table staging.obs_waterlogging (
    site_id varchar not null,
    device_id varchar not null,
    observed_at timestamptz not null,
    local_date date not null,
    period_s integer not null,
    seq bigint not null,
    flags varchar not null,
    depth_cm double,
    rain_mm double,
    is_valid boolean not null,
    failed_expectations varchar not null,
    received_at timestamptz not null,
    content_hash varchar not null,
    source_file varchar not null,
    validation_run_id varchar not null,
    loaded_at timestamptz not null
);
comment on table staging.obs_waterlogging is 'one row per (site_id, device_id, observed_at) reading in the batch being loaded (empty between loads); is_valid = passed every row-level expectation and carries no device flag';

create table core.obs_waterlogging (
    site_id varchar not null,
    device_id varchar not null,
    observed_at timestamptz not null,
    local_date date not null,
    period_s integer not null,
    seq bigint not null,
    flags varchar not null,
    depth_cm double,
    rain_mm double,
    is_valid boolean not null,
    failed_expectations varchar not null,
    received_at timestamptz not null,
    content_hash varchar not null,
    source_file varchar not null,
    validation_run_id varchar not null,
    loaded_at timestamptz not null
);
comment on table core.obs_waterlogging is 'one row per (site_id, device_id, observed_at) stored reading, valid or flagged; is_valid = passed every row-level expectation and carries no device flag';

create table staging.obs_traffic (
    site_id varchar not null,
    device_id varchar not null,
    lane smallint not null,
    direction varchar,
    observed_at timestamptz not null,
    local_date date not null,
    period_s integer not null,
    seq bigint not null,
    flags varchar not null,
    volume_veh double,
    speed_kmh double,
    occupancy_pct double,
    is_valid boolean not null,
    failed_expectations varchar not null,
    received_at timestamptz not null,
    content_hash varchar not null,
    source_file varchar not null,
    validation_run_id varchar not null,
    loaded_at timestamptz not null
);
comment on table staging.obs_traffic is 'one row per (site_id, device_id, lane, observed_at) reading in the batch being loaded (empty between loads); is_valid = passed every row-level expectation and carries no device flag';

create table core.obs_traffic (
    site_id varchar not null,
    device_id varchar not null,
    lane smallint not null,
    direction varchar,
    observed_at timestamptz not null,
    local_date date not null,
    period_s integer not null,
    seq bigint not null,
    flags varchar not null,
    volume_veh double,
    speed_kmh double,
    occupancy_pct double,
    is_valid boolean not null,
    failed_expectations varchar not null,
    received_at timestamptz not null,
    content_hash varchar not null,
    source_file varchar not null,
    validation_run_id varchar not null,
    loaded_at timestamptz not null
);
comment on table core.obs_traffic is 'one row per (site_id, device_id, lane, observed_at) stored reading, valid or flagged; is_valid = passed every row-level expectation and carries no device flag';
