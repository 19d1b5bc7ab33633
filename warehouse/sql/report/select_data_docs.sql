select data_docs_url
from dq.validation_runs
where load_run_id = $load_run_id and data_docs_url is not null
order by feed;
