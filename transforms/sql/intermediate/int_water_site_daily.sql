-- int.int_water_site_daily for $start_date..$end_date: readings stored and valid per site-day.
delete from int.int_water_site_daily where local_date between $start_date and $end_date;

insert into int.int_water_site_daily
with
obs as (
    select site_id, local_date, is_valid
    from core.obs_water
    where local_date between $start_date and $end_date
)

select
    site_id,
    local_date,
    count(*) as n_rows,
    count(*) filter (where is_valid) as n_valid_rows,
    now() as computed_at
from obs
group by site_id, local_date;
