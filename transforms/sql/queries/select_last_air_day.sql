-- The last day of $year in the county air mart.
select max(local_date) as last_day
from kpi.air_daily
where year(local_date) = $year;
