-- int.water_daily_site for $start_date..$end_date: readings stored and valid per site-day,
-- and the expected result slots they fill. A slot is one period of the catalogue per device,
-- aligned on the epoch (the period ending at observed_at); extra readings in a filled slot add
-- nothing, so coverage never exceeds 100 % (docs/data_quality.md, Coverage).
delete from int.water_daily_site where local_date between $start_date and $end_date;

insert into int.water_daily_site by name
with
obs as (
    select site_id, device_id, local_date, observed_at, is_valid
    from core.obs_water
    where local_date between $start_date and $end_date
),

sites as (
    select site_id, period_s, len(device_ids) as n_devices
    from core.dim_site
    where feed = 'water'
),

slotted as (
    select
        o.*,
        s.n_devices * 86400 // s.period_s as max_slots,
        (epoch_us(o.observed_at) - 1) // (s.period_s * 1000000::bigint) as slot
    from obs as o
    inner join sites as s on o.site_id = s.site_id
)

select
    site_id,
    local_date,
    count(*) as n_rows,
    count(*) filter (where is_valid) as n_valid_rows,
    least(
        count(distinct(device_id, slot)) filter (where is_valid), any_value(max_slots)
    ) as n_valid_slots,
    now() as computed_at
from slotted
group by site_id, local_date;
