-- Scratch: core.obs_{{feed}} with the warehouse's columns, from the registered Arrow copy.
create or replace table core.obs_{{feed}} as
select * from intraday_input
