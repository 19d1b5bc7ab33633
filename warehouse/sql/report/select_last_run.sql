-- The most recent load run that read landing or quarantine data.
select load_run_id
from dq.batch_counts
group by load_run_id
order by max(loaded_at) desc
limit 1;
