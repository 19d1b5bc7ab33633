-- The pack rows of $start_date..$end_date as published before this run (restatements compare).
create or replace temp table kpi_values_before as
select *
from kpi.pack_values
where local_date between $start_date and $end_date;

delete from kpi.pack_values where local_date between $start_date and $end_date;
