-- Validity per value column over the loaded days (dq.site_day_values): values received, valid,
-- invalidated by a value-level check, and in readings invalid as a whole.
select
    feed,
    column_name,
    sum(received_values) as received,
    sum(valid_values) as valid,
    sum(invalid_value_check) as invalid_value_check,
    sum(invalid_reading) as invalid_reading
from dq.site_day_values
where local_date between $start_date and $end_date
group by all
order by feed, column_name;
