-- Warehouse: 1 when the daily KPI run has packed day $d (kpi.pack_values has it), else 0.
select least(count(*), 1) as n
from kpi.pack_values
where local_date = $d
