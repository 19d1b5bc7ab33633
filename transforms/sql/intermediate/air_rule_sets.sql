-- int.air_rule_sets: one row per AQI rule set, the long reference file ref.aqi_rules
-- (one row per parameter, each with its source) pivoted to typed columns. Rebuilt every run.
delete from int.air_rule_sets;

insert into int.air_rule_sets
with rules as (
    select
        rule_set::varchar as rule_set,
        valid_from::date as valid_from,
        param::varchar as param,
        value::varchar as value
    from ref.aqi_rules
),

pivoted as (
    select
        rule_set,
        min(valid_from) as valid_from,
        max(value) filter (where param = 'round_before_iaqi')::boolean as round_before_iaqi,
        max(value) filter (where param = 'missing_pollutant') as missing_pollutant,
        max(value) filter (where param = 'missing_publish_above_aqi')::integer
            as missing_publish_above_aqi,
        max(value) filter (where param = 'primary_above_aqi')::integer as primary_above_aqi,
        max(value) filter (where param = 'good_max_aqi')::integer as good_max_aqi,
        max(value) filter (where param = 'min_minutes_per_hour')::integer as min_minutes_per_hour,
        max(value) filter (where param = 'min_hours_per_day')::integer as min_hours_per_day,
        max(value) filter (where param = 'min_hours_per_8h')::integer as min_hours_per_8h,
        max(value) filter (where param = 'min_hours_per_24h_moving')::integer
            as min_hours_per_24h_moving,
        max(value) filter (where param = 'o3_8h_first_end_hour')::integer as o3_8h_first_end_hour,
        max(value) filter (where param = 'min_o3_8h_per_day')::integer as min_o3_8h_per_day,
        max(value) filter (where param = 'min_hours_o3_1h_max')::integer as min_hours_o3_1h_max,
        max(value) filter (where param = 'county_min_station_share')::decimal(5, 4)
            as county_min_station_share,
        max(value) filter (where param = 'min_daily_values_year')::integer
            as min_daily_values_year,
        max(value) filter (where param = 'min_daily_values_month')::integer
            as min_daily_values_month,
        max(value) filter (where param = 'min_daily_values_february')::integer
            as min_daily_values_february,
        max(value) filter (where param = 'natural_day_timezone') as natural_day_timezone,
        max(value) filter (where param = 'o3_8h_valid_above_ugm3')::integer
            as o3_8h_valid_above_ugm3,
        coalesce(max(value) filter (where param = 'county_mean_of_rounded')::boolean, false)
            as county_mean_of_rounded
    from rules
    group by rule_set
)

select
    rule_set,
    valid_from,
    -- the earliest rule set also governs any earlier day (a backfill before 2012)
    case
        when valid_from = min(valid_from) over () then date '0001-01-01' else valid_from
    end as applies_from,
    round_before_iaqi,
    missing_pollutant,
    missing_publish_above_aqi,
    primary_above_aqi,
    good_max_aqi,
    min_minutes_per_hour,
    min_hours_per_day,
    min_hours_per_8h,
    min_hours_per_24h_moving,
    o3_8h_first_end_hour,
    min_o3_8h_per_day,
    min_hours_o3_1h_max,
    county_min_station_share,
    min_daily_values_year,
    min_daily_values_month,
    min_daily_values_february,
    natural_day_timezone,
    o3_8h_valid_above_ugm3,
    county_mean_of_rounded
from pivoted;
