-- Every migration transaction rewrites the one claim row: two overlapping ones conflict.
update meta.schema_migration_claim
set migrations_applied = migrations_applied + 1;
