-- 1 when the county air mart has day $d (computed before), else 0.
select count(*) as n
from kpi.air_daily
where local_date = $d;
