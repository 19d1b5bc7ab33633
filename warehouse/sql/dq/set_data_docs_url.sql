update dq.validation_runs
set data_docs_url = $url
where validation_run_id = $validation_run_id;
