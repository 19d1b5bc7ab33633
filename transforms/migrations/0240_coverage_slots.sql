-- Coverage counts expected result slots, not readings (issue 7): an off-schedule extra reading
-- no longer pushes a site past 100 % and hides a silent one.
alter table int.int_water_site_daily add column if not exists n_valid_slots integer;
comment on table int.int_water_site_daily is 'one row per (site_id, local_date) with any reading: readings stored, valid readings, and expected result slots (device x period of the catalogue) holding at least one valid reading, at most devices x 86400 / period_s';
