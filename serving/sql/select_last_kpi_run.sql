-- When the KPIs last ran, and the last day that run computed (readiness).
with runs as (
    select * from kpi.runs
)

select
    max(finished_at) as last_kpi_run_at,
    arg_max(end_date, finished_at) as last_kpi_day
from runs;
