-- Warehouse: the readings of feed {{feed}} the intraday models read, natural days
-- $start_date .. $end_date of core, observed up to $until (later readings belong to an hour not
-- yet complete). Every column, so the scratch copy has core's shape.
select *
from core.obs_{{feed}}
where local_date between $start_date and $end_date and observed_at <= $until
