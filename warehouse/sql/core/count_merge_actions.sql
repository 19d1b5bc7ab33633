-- Outcome of the merge just run: readings per action, and how many of them passed every check.
select
    action,
    count(*) as readings,
    count(*) filter (where is_clean) as valid
from merge_plan
group by action;
