-- What each failing reading of the merge just planned failed (row_id, failed_expectations),
-- whether it still counts as a whole (is_valid) and which of its values do not (invalid_columns).
select row_id, failed_expectations, is_valid, invalid_columns
from batch_failed;
