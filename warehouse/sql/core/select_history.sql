-- Recent stored readings of a feed, for the flat-line and spike windows of the next batch.
select *
from core.obs_{{feed}}
where observed_at >= $since and observed_at <= $until;
