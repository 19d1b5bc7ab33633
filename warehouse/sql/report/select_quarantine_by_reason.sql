select
    coalesce(feed, 'unknown') as feed,
    reason,
    count(*) as records
from dq.quarantine
where load_run_id = $load_run_id
group by all
order by feed asc, records desc, reason asc;
