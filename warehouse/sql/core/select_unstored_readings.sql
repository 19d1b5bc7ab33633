-- Readings of the merge just planned that are not stored: exact duplicates and stale copies.
select row_id
from merge_plan
where action in ('duplicate', 'stale');
