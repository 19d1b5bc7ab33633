-- The base tables of database $database (views are not data), except the migration ledger: the
-- target's own migrations fill it. One row per table, in name order.
select
    schema_name,
    table_name
from duckdb_tables()
where
    database_name = $database
    and not temporary
    and not (schema_name = 'meta' and table_name = 'schema_migrations')
order by schema_name, table_name;
