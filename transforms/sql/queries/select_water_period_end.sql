-- The last day of $year with water period rows.
select max(as_of_date) as last_day
from kpi.water_period_section
where year(as_of_date) = $year;
