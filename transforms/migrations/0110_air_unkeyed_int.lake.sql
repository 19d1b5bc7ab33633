-- DuckLake variant of 0110_air_unkeyed_int.sql, run instead of it on a lake (common/migrate.py).
-- On a lake there is nothing to bring up to date: 0100_air.lake.sql already creates
-- kpi.kpi_good_days_air with nullable target columns (DuckLake refuses "drop not null" on a
-- nullable column, where plain DuckDB ignores it) and the four hourly int tables without keys,
-- with exactly the columns 0110 rebuilds them with. (A rename and a create of the same name in
-- one transaction also fail on a lake.) Only the comments 0110 sets remain.
comment on table int.air_hourly_station is 'one row per (air site, hour_end) for every hour of the computed days (complete grid, nulls where no valid value): hourly mean per pollutant of the valid readings, null unless >= min_minutes_per_hour minutes were sampled (GB 3095 Table 4)';
comment on table int.air_moving_station is 'one row per (air site, hour_end): O3 8-hour moving mean of the 8 hourly values ending at hour_end (>= 6 valid) and 24-hour moving means of PM2.5, PM10, SO2 (>= 20 valid, for the 2012 real-time AQI)';
comment on table int.air_iaqi is 'one row per (grain day|hour, scope county|site_id, period_end_local, AQI input of the rule set): the concentration, the value used (rounded per the rule set) and its IAQI (exact, rounded up)';
comment on table int.air_aqi is 'one row per (grain, scope, period_end_local): AQI = max IAQI of the counted indicators, null when not published (missing-pollutant rule), category, primary pollutant(s) (ties all, none when AQI <= 50)';
