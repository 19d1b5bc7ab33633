-- The base tables of database $database (views are not data), except the migration runner's
-- own (meta.schema_migrations, its claim row): the target's own migrations fill those. One row
-- per table, in name order.
select
    schema_name,
    table_name
from duckdb_tables()
where
    database_name = $database
    and not temporary
    and not (schema_name = 'meta' and starts_with(table_name, 'schema_migration'))
order by schema_name, table_name;
