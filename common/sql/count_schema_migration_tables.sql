-- 2 once the runner's ledger and claim tables exist in the default database.
select count(*) as n_tables
from duckdb_tables()
where
    database_name = current_database()
    and schema_name = 'meta'
    and table_name in ('schema_migrations', 'schema_migration_claim');
