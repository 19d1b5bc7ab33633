-- Dirty days in $start_date .. $end_date marked before the run started are now computed.
update core.dirty_days
set kpi_computed_at = $started_at
where
    local_date between $start_date and $end_date
    and last_marked_at <= $started_at
    and (kpi_computed_at is null or kpi_computed_at < last_marked_at);
