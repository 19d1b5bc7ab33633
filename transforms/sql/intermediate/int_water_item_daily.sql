-- int.int_water_item_daily for the natural days $start_date..$end_date: count and sum of the
-- valid results of each channel (nulls = failed channel, not counted). The sum is an exact
-- decimal (results taken to 6 decimals) so period means round like the decimal numbers they are.
delete from int.int_water_item_daily where local_date between $start_date and $end_date;

insert into int.int_water_item_daily
with
obs as (
    select
        site_id, local_date, water_temp_c, ph, do_mgl, codmn_mgl, nh3n_mgl, tp_mgl, tn_mgl,
        conductivity_uscm, turbidity_ntu
    from core.obs_water
    where is_valid and local_date between $start_date and $end_date
),

long_results as (
    unpivot obs
    on water_temp_c, ph, do_mgl, codmn_mgl, nh3n_mgl, tp_mgl, tn_mgl, conductivity_uscm, turbidity_ntu
    into name channel value result_value
)

select
    site_id,
    local_date,
    channel,
    count(*) as n_results,
    sum(result_value::decimal(18, 6)) as sum_value,
    min(result_value) as min_value,
    max(result_value) as max_value,
    now() as computed_at
from long_results
group by site_id, local_date, channel;
