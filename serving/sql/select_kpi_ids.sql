-- The KPI ids in the pack: unit, days covered, dimensions.
with pack as (
    select * from kpi.pack_values
)

select
    kpi_id,
    any_value(unit) as unit,
    min(local_date) as first_date,
    max(local_date) as last_date,
    count(distinct dimension) as n_dimensions
from pack
group by kpi_id
order by kpi_id;
