-- Every dimension value the pack holds (county, districts, site ids).
with pack as (
    select * from kpi.pack_values
)

select distinct dimension from pack
order by dimension;
