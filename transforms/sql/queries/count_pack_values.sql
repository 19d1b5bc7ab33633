select count(*) as n
from kpi.pack_values
where local_date between $start_date and $end_date;
