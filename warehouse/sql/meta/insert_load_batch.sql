insert into meta.load_batches (
    validation_run_id, load_run_id, feed, changed_dates, loaded_at
)
values ($validation_run_id, $load_run_id, $feed, $changed_dates, $loaded_at);
