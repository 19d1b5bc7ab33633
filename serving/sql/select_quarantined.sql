-- Quarantined messages or readings, by the day they were received, paged.
with quarantined as (
    select * from dq.quarantine
)

select
    received_date, received_at, feed, site_id, reason, detail, topic, reading_index,
    payload_bytes, payload_sha256, payload_excerpt, source_file, load_run_id, loaded_at
from quarantined
where
    received_date between $start_date and $end_date
    and ($feed is null or feed = $feed)
    and ($site_id is null or site_id = $site_id)
    and ($reason is null or reason = $reason)
order by received_at desc, source_file asc, reading_index asc
limit $limit offset $offset;
