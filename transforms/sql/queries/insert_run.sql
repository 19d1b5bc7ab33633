-- One row per run (kpi.runs): why it ran, the days it covered, what it produced.
insert into kpi.runs
values (
    $run_id, $reason, $start_date, $end_date, $as_of_date, $n_values, $n_restatements,
    $started_at, now()
);
