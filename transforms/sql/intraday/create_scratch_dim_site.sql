-- Scratch: core.dim_site with the warehouse's columns, from the registered Arrow copy.
create or replace table core.dim_site as
select * from intraday_input
