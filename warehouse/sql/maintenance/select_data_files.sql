-- The lake's current data and delete files (every table), counted and summed in bytes.
with table_files as (
    select * from ducklake_table_info('lake')
)

select
    count(*) as n_tables,
    coalesce(sum(file_count), 0)::bigint as n_data_files,
    coalesce(sum(file_size_bytes), 0)::bigint as data_bytes,
    coalesce(sum(delete_file_count), 0)::bigint as n_delete_files,
    coalesce(sum(delete_file_size_bytes), 0)::bigint as delete_bytes
from table_files;
