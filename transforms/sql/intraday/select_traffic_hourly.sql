-- Scratch: TPI by scope and complete local hour of $start_date .. $end_date, as the production
-- models computed them into kpi.traffic_hourly.
select
    scope,
    local_date,
    hour_start,
    hour_end,
    peak_period,
    n_detectors,
    volume_veh,
    vkt,
    tti,
    tpi,
    tpi_level_no,
    tpi_level,
    tpi_level_zh
from kpi.traffic_hourly
where local_date between $start_date and $end_date and hour_end <= $data_until_local
