-- The look-back of $feed on $as_of_date, or with $feed null the longest of any feed.
select max(kpi_lookback_days(f.feed, $as_of_date::date)) as lookback_days
from (select distinct feed from ref.kpi_status) as f
where $feed::varchar is null or f.feed = $feed::varchar;
