-- One row per natural key within a batch read from landing (landing_rows, registered):
-- a re-delivery or revision inside the batch keeps its latest received_at. Sorted by series
-- and time so core is written in key order (tighter zone maps).
select *
from landing_rows
qualify
    row_number() over (
        partition by site_id, device_id, lane, observed_at
        order by received_at desc, source_file desc
    ) = 1
order by site_id, device_id, lane, observed_at;
