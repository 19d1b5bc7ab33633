-- 1 when the PostgreSQL database attached as pg holds a DuckLake catalog in schema $schema
-- (its tables exist once a lake was attached read-write), else 0.
select count(*) as n
from pg.information_schema.tables
where table_name = 'ducklake_snapshot' and table_schema = $schema;
