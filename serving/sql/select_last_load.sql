-- When the warehouse last loaded a landing or quarantine file (readiness).
with ledger as (
    select * from meta.load_ledger
)

select max(loaded_at) as last_load_at from ledger;
