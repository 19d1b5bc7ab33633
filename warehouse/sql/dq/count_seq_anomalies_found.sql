-- Anomalies the seq recompute just run holds for the batch's devices and span (seq_found, from
-- dq/recompute_seq_gaps.sql).
select count(*) as anomalies
from seq_found;
