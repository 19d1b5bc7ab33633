-- Issue 9 item 7: the CO 95th and O3 90th percentiles carry their annual-validity flag too
-- (GB 3095-2012 Table 4: >= 324 daily values a year, >= 27 in each month, 25 in February).
alter table kpi.kpi_annual_air add column if not exists co_year_valid boolean;
alter table kpi.kpi_annual_air add column if not exists o3_8h_year_valid boolean;
