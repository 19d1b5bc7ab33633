-- kpi.air_annual: one row per local_date of $start_date .. $cum_end_date: annual statistics of
-- the county daily values from 1 January to that day (standards.md 3, HJ 663): means of the
-- valid daily means (exact, 1e-6), PM 95th, SO2/NO2 98th, CO 95th percentile of daily means and
-- O3 90th percentile of daily max 8h, numpy's linear method (= quantile_cont). *_year_valid, for
-- every statistic (CO and O3 percentiles included): >= min_daily_values_year valid days and
-- every ended month >= its minimum (GB 3095 Table 4).
delete from kpi.air_annual where local_date between $start_date and $cum_end_date;

insert into kpi.air_annual by name
with county as (
    select c.*, k.status
    from int.air_daily_county as c
    inner join kpi.air_daily as k on c.local_date = k.local_date
    where c.local_date between make_date(year($start_date::date), 1, 1) and $cum_end_date
),

rule_sets as (
    select * from int.air_rule_sets
),

monthly as (
    select
        year(c.local_date) as year,
        month(c.local_date) as month,
        last_day(min(c.local_date)) as month_end,
        case
            when month(c.local_date) = 2 then any_value(r.min_daily_values_february)
            else any_value(r.min_daily_values_month)
        end as min_days,
        count(c.pm25_ugm3) as n_pm25,
        count(c.pm10_ugm3) as n_pm10,
        count(c.so2_ugm3) as n_so2,
        count(c.no2_ugm3) as n_no2,
        count(c.co_mgm3) as n_co,
        count(c.o3_8h_max_ugm3) as n_o3_8h
    from county as c
    inner join rule_sets as r on c.rule_set = r.rule_set
    group by year(c.local_date), month(c.local_date)
),

cumulative as (
    select
        c.local_date,
        year(c.local_date) as year,
        c.rule_set,
        air_mean6(sum(c.pm25_ugm3) over ytd, count(c.pm25_ugm3) over ytd) as pm25_mean,
        air_mean6(sum(c.pm10_ugm3) over ytd, count(c.pm10_ugm3) over ytd) as pm10_mean,
        air_mean6(sum(c.so2_ugm3) over ytd, count(c.so2_ugm3) over ytd) as so2_mean,
        air_mean6(sum(c.no2_ugm3) over ytd, count(c.no2_ugm3) over ytd) as no2_mean,
        quantile_cont(c.pm25_ugm3::double, 0.95) over ytd as pm25_p95,
        quantile_cont(c.pm10_ugm3::double, 0.95) over ytd as pm10_p95,
        quantile_cont(c.so2_ugm3::double, 0.98) over ytd as so2_p98,
        quantile_cont(c.no2_ugm3::double, 0.98) over ytd as no2_p98,
        quantile_cont(c.co_mgm3::double, 0.95) over ytd as co_p95,
        quantile_cont(c.o3_8h_max_ugm3::double, 0.90) over ytd as o3_8h_p90,
        count(c.pm25_ugm3) over ytd as n_pm25,
        count(c.pm10_ugm3) over ytd as n_pm10,
        count(c.so2_ugm3) over ytd as n_so2,
        count(c.no2_ugm3) over ytd as n_no2,
        count(c.co_mgm3) over ytd as n_co,
        count(c.o3_8h_max_ugm3) over ytd as n_o3_8h,
        sum((c.status <> 'final')::integer) over ytd as n_not_final
    from county as c
    window ytd as (
        partition by year(c.local_date) order by c.local_date
        rows between unbounded preceding and current row
    )
),

months_ok as (
    select
        c.local_date,
        coalesce(bool_and(m.n_pm25 >= m.min_days), true) as pm25_ok,
        coalesce(bool_and(m.n_pm10 >= m.min_days), true) as pm10_ok,
        coalesce(bool_and(m.n_so2 >= m.min_days), true) as so2_ok,
        coalesce(bool_and(m.n_no2 >= m.min_days), true) as no2_ok,
        coalesce(bool_and(m.n_co >= m.min_days), true) as co_ok,
        coalesce(bool_and(m.n_o3_8h >= m.min_days), true) as o3_8h_ok
    from cumulative as c
    left join monthly as m on c.year = m.year and c.local_date >= m.month_end
    group by c.local_date
)

select
    c.local_date,
    c.year,
    c.pm25_mean::double as pm25_ytd_mean_ugm3,
    c.pm10_mean::double as pm10_ytd_mean_ugm3,
    c.so2_mean::double as so2_ytd_mean_ugm3,
    c.no2_mean::double as no2_ytd_mean_ugm3,
    c.pm25_p95 as pm25_p95_ugm3,
    c.pm10_p95 as pm10_p95_ugm3,
    c.so2_p98 as so2_p98_ugm3,
    c.no2_p98 as no2_p98_ugm3,
    c.co_p95 as co_p95_mgm3,
    c.o3_8h_p90 as o3_8h_p90_ugm3,
    c.n_pm25 as count_valid_days_pm25,
    c.n_pm10 as count_valid_days_pm10,
    c.n_so2 as count_valid_days_so2,
    c.n_no2 as count_valid_days_no2,
    c.n_co as count_valid_days_co,
    c.n_o3_8h as count_valid_days_o3_8h,
    c.n_pm25 >= r.min_daily_values_year and o.pm25_ok as pm25_year_valid,
    c.n_pm10 >= r.min_daily_values_year and o.pm10_ok as pm10_year_valid,
    c.n_so2 >= r.min_daily_values_year and o.so2_ok as so2_year_valid,
    c.n_no2 >= r.min_daily_values_year and o.no2_ok as no2_year_valid,
    c.n_co >= r.min_daily_values_year and o.co_ok as co_year_valid,
    c.n_o3_8h >= r.min_daily_values_year and o.o3_8h_ok as o3_8h_year_valid,
    case when c.n_not_final = 0 then 'final' else 'provisional' end as status,
    $computed_at as computed_at
from cumulative as c
inner join rule_sets as r on c.rule_set = r.rule_set
inner join months_ok as o on c.local_date = o.local_date
where c.local_date between $start_date and $cum_end_date;
