-- Outcome of the merge just run: readings per action; how many of them passed every check
-- (valid) and how many count as a whole with some value invalidated (partly_valid).
select
    action,
    count(*) as readings,
    count(*) filter (where is_clean) as valid,
    count(*) filter (where is_valid and not is_clean) as partly_valid
from merge_plan
group by action;
