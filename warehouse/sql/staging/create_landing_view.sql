-- staging.landing_{{feed}}: the feed's landing Parquet files as read, nothing stored. DuckDB
-- cannot bind parameters in view DDL, so the path is a quoted literal from settings.
create or replace view staging.landing_{{feed}} as
select *
from read_parquet({{path}}, hive_partitioning = true);

comment on view staging.landing_{{feed}} is 'one row per landed reading as read from the landing Parquet files (before dedupe and validation); a view, nothing stored';
