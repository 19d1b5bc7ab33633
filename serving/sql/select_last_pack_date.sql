-- The newest day with KPIs, on or before $as_of_date (null: any).
with pack as (
    select * from kpi.pack_values
)

select max(local_date) as last_date
from pack
where $as_of_date is null or local_date <= $as_of_date;
