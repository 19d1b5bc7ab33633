-- 1 when $schema.$table exists, else 0.
select count(*) as n
from information_schema.tables
where table_schema = $schema and table_name = $table;
