select feed, local_date
from core.dirty_days
where kpi_computed_at is null or kpi_computed_at < last_marked_at
order by feed, local_date;
