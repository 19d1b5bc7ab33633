-- The open day of the last intraday run (today, once the run has passed midnight), the day of
-- its last complete hour (yesterday until the run after 01:00), the instant its values run to
-- and when it ran; no row before the first intraday run.
select
    local_date as open_day,
    coalesce(
        max(local_date) filter (where hours_so_far > 0) over (), local_date
    ) as last_hour_day,
    data_until,
    computed_at
from kpi.intraday_air_day
order by local_date desc
limit 1;
