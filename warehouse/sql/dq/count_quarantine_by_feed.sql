-- Quarantined records per feed among those just registered ('unknown' when the topic was bad).
select
    coalesce(feed, 'unknown') as feed,
    count(*) as quarantined
from quarantine_rows
group by all
order by feed;
