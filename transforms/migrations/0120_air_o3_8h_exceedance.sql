-- HJ 663-2013 daily max 8h O3 (issue 9): a day with fewer than min_o3_8h_per_day valid windows
-- is still valid when its highest window exceeds the O3 8h Class II limit. The limit is a rule
-- parameter (ref.aqi_rules: o3_8h_valid_above_ugm3), pivoted into int.air_rule_sets like the
-- others. Added as the table's last column: int_air_rule_sets.sql inserts by position.
alter table int.air_rule_sets add column if not exists o3_8h_valid_above_ugm3 integer;
comment on column int.air_rule_sets.o3_8h_valid_above_ugm3 is 'HJ 663-2013: with fewer than min_o3_8h_per_day valid 8h windows the daily max 8h O3 is still valid when its published (rounded) value exceeds this (GB 3095 O3 8h Class II limit, 160)';
comment on table int.air_daily_station is 'one row per (air site, local_date): 24h means (>= 20 valid hours), daily max 8h O3 (HJ 663: the 8h means ending 08:00 .. 24:00, valid with >= min_o3_8h_per_day valid windows or, with fewer, when the highest exceeds o3_8h_valid_above_ugm3) and daily max 1h O3; coverage_pct = valid hourly values / (6 pollutants x hours) x 100';
