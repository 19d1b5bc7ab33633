-- Outcome of the merge just run: readings per action, and how many of them are valid.
select
    action,
    count(*) as readings,
    count(*) filter (where is_valid) as valid
from merge_plan
group by action;
