-- Days in $since .. $until with a waterlogging event still open when last computed.
select distinct local_date
from kpi.waterlogging_events
where status = 'ongoing' and local_date between $since and $until
order by 1;
