-- Bytes of the lake's catalog tables (with indexes and TOAST) in its PostgreSQL schema
-- $metadata_schema: several lakes may share one database, so not pg_database_size. The query
-- text is a constant for PostgreSQL; the schema is filtered here, bound.
with schema_bytes as (
    select *
    from postgres_query(
        '__ducklake_metadata_lake',
        'select n.nspname::text as schema_name, sum(pg_total_relation_size(c.oid))::bigint as n_bytes
         from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
         where c.relkind = ''r'' group by n.nspname'
    )
)

select coalesce(sum(n_bytes), 0)::bigint as catalog_bytes
from schema_bytes
where schema_name = $metadata_schema;
