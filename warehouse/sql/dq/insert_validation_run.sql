insert into dq.validation_runs (
    validation_run_id, load_run_id, feed, suite_name, suite_version, files, rows, success,
    evaluated_expectations, successful_expectations, unsuccessful_expectations, success_percent,
    statistics_json, results_json, batch_checks_json, data_docs_url, started_at, ended_at
)
values (
    $validation_run_id, $load_run_id, $feed, $suite_name, $suite_version, $files, $rows, $success,
    $evaluated, $successful, $unsuccessful, $success_percent,
    $statistics_json, $results_json, $batch_checks_json, null, $started_at, $ended_at
);
