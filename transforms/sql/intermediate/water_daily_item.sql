-- int.water_daily_item for the natural days $start_date..$end_date: count and sum of the
-- valid results of each channel (nulls = failed channel, not counted). The sum is an exact
-- decimal (results taken to 6 decimals) so period means round like the decimal numbers they are.
delete from int.water_daily_item where local_date between $start_date and $end_date;

insert into int.water_daily_item
with
-- Validity per item: a result a check invalidated (pH out of range, stuck DO probe ...) is
-- null here, so not counted; the sample's other items still count. is_valid = the reading as a
-- whole counts (no device fault flag, known site ...).
obs as (
    select
        site_id,
        local_date,
        if(list_contains(invalid_columns, 'water_temp_c'), null, water_temp_c) as water_temp_c,
        if(list_contains(invalid_columns, 'ph'), null, ph) as ph,
        if(list_contains(invalid_columns, 'do_mgl'), null, do_mgl) as do_mgl,
        if(list_contains(invalid_columns, 'codmn_mgl'), null, codmn_mgl) as codmn_mgl,
        if(list_contains(invalid_columns, 'nh3n_mgl'), null, nh3n_mgl) as nh3n_mgl,
        if(list_contains(invalid_columns, 'tp_mgl'), null, tp_mgl) as tp_mgl,
        if(list_contains(invalid_columns, 'tn_mgl'), null, tn_mgl) as tn_mgl,
        if(list_contains(invalid_columns, 'conductivity_uscm'), null, conductivity_uscm)
            as conductivity_uscm,
        if(list_contains(invalid_columns, 'turbidity_ntu'), null, turbidity_ntu) as turbidity_ntu
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
