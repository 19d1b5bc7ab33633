-- When the warehouse last loaded a file and last ran the KPIs (readiness).
with ledger as (
    select * from meta.load_ledger
),

runs as (
    select * from kpi.runs
)

select
    (select max(loaded_at) from ledger) as last_load_at,
    (select max(finished_at) from runs) as last_kpi_run_at,
    (select max(end_date) from runs) as last_kpi_day;
