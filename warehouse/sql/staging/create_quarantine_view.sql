-- staging.quarantine: the quarantine Parquet files as read, nothing stored (path: see
-- create_landing_view.sql).
create or replace view staging.quarantine as
select *
from read_parquet({{path}}, hive_partitioning = true);

comment on view staging.quarantine is 'one row per quarantined message or reading as read from the quarantine Parquet files (full payload); a view, nothing stored';
