-- The columns of $database.$schema.$table, in table order.
select column_name
from duckdb_columns()
where database_name = $database and schema_name = $schema and table_name = $table
order by column_index;
