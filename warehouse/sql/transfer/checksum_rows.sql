-- Row count and an order-independent checksum of the temp view transfer_rows (a table projected
-- on its columns in name order): the sum of each row's hash (the view's name is the row as a
-- struct). Rows are hashed as text, so equal values hash alike even where the two sides store a
-- column in a wider type.
select
    count(*) as n_rows,
    coalesce(sum(hash(transfer_rows::varchar)), 0)::hugeint as rows_checksum
from transfer_rows;
