-- What each failing reading of the merge just planned failed (row_id, failed_expectations).
select row_id, failed_expectations
from batch_failed;
