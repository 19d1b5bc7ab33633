-- Promote pack rows to final once the status rule says so (status_macros.sql: the day has left
-- the look-back and coverage suffices). Status is not a value: no restatement.
update kpi.pack_values as v
set status = 'final'
where
    v.status = 'provisional'
    and kpi_status(split_part(v.kpi_id, '.', 1), v.local_date, $as_of_date::date, v.coverage_pct)
    = 'final';
