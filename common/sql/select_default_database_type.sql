-- 'ducklake' when the connection's default database is a lake, 'duckdb' for a file.
select type
from duckdb_databases()
where database_name = current_database();
