select max(local_date) as last_day
from kpi.pack_values
where year(local_date) = $year;
