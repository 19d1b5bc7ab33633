-- int.air_daily_county: one row per local_date of $start_date .. $end_date (also days without
-- data). County value per indicator = arithmetic mean of the assessment stations' valid daily
-- values (standards.md 3; micro-stations never), null unless at least
-- ceil(county_min_station_share x assessment stations) stations have a valid value (convention).
delete from int.air_daily_county where local_date between $start_date and $end_date;

insert into int.air_daily_county
with rule_sets as (
    select * from int.air_rule_sets
),

-- the station values the county mean is taken of: exact, or as published when the rule set
-- says so (county_mean_of_rounded; docs/kpis_air.md says which published series each matches)
stations as (
    select
        s.* replace (
            case when r.county_mean_of_rounded then round_even(s.pm25_ugm3, 0) else s.pm25_ugm3 end
                as pm25_ugm3,
            case when r.county_mean_of_rounded then round_even(s.pm10_ugm3, 0) else s.pm10_ugm3 end
                as pm10_ugm3,
            case when r.county_mean_of_rounded then round_even(s.so2_ugm3, 0) else s.so2_ugm3 end
                as so2_ugm3,
            case when r.county_mean_of_rounded then round_even(s.no2_ugm3, 0) else s.no2_ugm3 end
                as no2_ugm3,
            case when r.county_mean_of_rounded then round_even(s.co_mgm3, 1) else s.co_mgm3 end
                as co_mgm3,
            case
                when r.county_mean_of_rounded then round_even(s.o3_8h_max_ugm3, 0)
                else s.o3_8h_max_ugm3
            end as o3_8h_max_ugm3,
            case
                when r.county_mean_of_rounded then round_even(s.o3_1h_max_ugm3, 0)
                else s.o3_1h_max_ugm3
            end as o3_1h_max_ugm3
        )
    from int.air_daily_station as s
    asof join rule_sets as r on s.local_date >= r.applies_from
    where s.local_date between $start_date and $end_date and s.is_assessment
),

assessment as (
    select count(*)::integer as n_stations
    from core.dim_site
    where feed = 'air' and coalesce(is_assessment, false)
),

days as (
    select unnest(generate_series($start_date::date, $end_date::date, interval 1 day))::date
        as local_date
),

day_rules as (
    select
        d.local_date,
        r.rule_set,
        a.n_stations,
        greatest(1, ceil(r.county_min_station_share * a.n_stations))::integer as n_required
    from days as d
    asof join rule_sets as r on d.local_date >= r.applies_from
    cross join assessment as a
),

agg as (
    select
        local_date,
        sum(pm25_ugm3) as s_pm25, count(pm25_ugm3) as n_pm25,
        sum(pm10_ugm3) as s_pm10, count(pm10_ugm3) as n_pm10,
        sum(so2_ugm3) as s_so2, count(so2_ugm3) as n_so2,
        sum(no2_ugm3) as s_no2, count(no2_ugm3) as n_no2,
        sum(co_mgm3) as s_co, count(co_mgm3) as n_co,
        sum(o3_8h_max_ugm3) as s_o3_8h, count(o3_8h_max_ugm3) as n_o3_8h,
        sum(o3_1h_max_ugm3) as s_o3_1h, count(o3_1h_max_ugm3) as n_o3_1h,
        sum(count_valid_hour_values) as n_values,
        sum(count_hours_expected) as n_hours
    from stations
    group by local_date
)

select
    d.local_date,
    d.rule_set,
    d.n_stations,
    d.n_required,
    case when a.n_pm25 >= d.n_required then air_mean6(a.s_pm25, a.n_pm25) end,
    case when a.n_pm10 >= d.n_required then air_mean6(a.s_pm10, a.n_pm10) end,
    case when a.n_so2 >= d.n_required then air_mean6(a.s_so2, a.n_so2) end,
    case when a.n_no2 >= d.n_required then air_mean6(a.s_no2, a.n_no2) end,
    case when a.n_co >= d.n_required then air_mean6(a.s_co, a.n_co) end,
    case when a.n_o3_8h >= d.n_required then air_mean6(a.s_o3_8h, a.n_o3_8h) end,
    case when a.n_o3_1h >= d.n_required then air_mean6(a.s_o3_1h, a.n_o3_1h) end,
    coalesce(a.n_pm25, 0),
    coalesce(a.n_pm10, 0),
    coalesce(a.n_so2, 0),
    coalesce(a.n_no2, 0),
    coalesce(a.n_co, 0),
    coalesce(a.n_o3_8h, 0),
    coalesce(a.n_o3_1h, 0),
    -- valid hourly values behind the day / (assessment stations x 24 h x 6 pollutants)
    case
        when d.n_stations = 0 then 0.0
        else round(100.0 * coalesce(a.n_values, 0) / (6 * 24 * d.n_stations), 1)
    end
from day_rules as d
left join agg as a on d.local_date = a.local_date;
