-- The base tables of database $database (views are not data), except bookkeeping the target's
-- own migrations fill: the migration runner's tables (meta.schema_migrations, its claim row)
-- and the writers' claim rows (meta.claim_*, 0011). One row per table, in name order.
select
    schema_name,
    table_name
from duckdb_tables()
where
    database_name = $database
    and not temporary
    and not (
        schema_name = 'meta'
        and (starts_with(table_name, 'schema_migration') or starts_with(table_name, 'claim_'))
    )
order by schema_name, table_name;
