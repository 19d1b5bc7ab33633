-- the demo's closing list: one row per restatement, oldest first
select kpi_id, local_date, dimension, old_value, new_value, reason
from kpi.restatements
order by restated_at, kpi_id
limit $max_rows
