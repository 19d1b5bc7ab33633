-- The open day of the last intraday run (today, once the run has passed midnight), with the
-- instant its values run to and when it ran; no row before the first intraday run.
select
    local_date as open_day,
    data_until,
    computed_at
from kpi.intraday_air_day
order by local_date desc
limit 1;
