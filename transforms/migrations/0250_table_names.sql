-- One naming pattern for the KPI tables: schema-qualified {feed}_{grain}[_{dimension}], the
-- schema not repeated in the name (as int.air_hourly_station). Renames only: rows, columns,
-- keys and comments stay. No view or persistent macro depends on these tables (the models'
-- macros are temp, defined per connection), so a plain rename suffices.
alter table int.int_traffic_detector_hourly rename to traffic_hourly_detector;
alter table int.int_water_item_daily rename to water_daily_item;
alter table int.int_water_site_daily rename to water_daily_site;

alter table kpi.kpi_daily_air rename to air_daily;
alter table kpi.kpi_daily_station_air rename to air_daily_station;
alter table kpi.kpi_hourly_air rename to air_hourly;
alter table kpi.kpi_good_days_air rename to air_good_days;
alter table kpi.kpi_annual_air rename to air_annual;

alter table kpi.kpi_daily_water rename to water_daily;
alter table kpi.kpi_period_water_item rename to water_period_item;
alter table kpi.kpi_period_water_section rename to water_period_section;

alter table kpi.kpi_event_waterlogging rename to waterlogging_events;
alter table kpi.kpi_daily_waterlogging rename to waterlogging_daily;

alter table kpi.kpi_hourly_traffic rename to traffic_hourly;
alter table kpi.kpi_daily_traffic rename to traffic_daily;

alter table kpi.kpi_values rename to pack_values;
alter table kpi.kpi_runs rename to runs;
alter table kpi.kpi_restatements rename to restatements;

-- The one comment that named a renamed table.
comment on table kpi.air_daily_station is 'one row per (air site, local_date): the station''s own daily AQI (assessment and micro-stations; micro-stations are for hot spots and never enter kpi.air_daily)';
