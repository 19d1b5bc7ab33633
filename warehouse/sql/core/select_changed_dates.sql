-- Local days that received new or changed readings in the merge just run.
select distinct local_date
from merge_plan
where action in ('new', 'revision')
order by local_date;
