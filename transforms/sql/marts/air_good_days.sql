-- kpi.air_good_days: one row per local_date of $start_date .. $cum_end_date: the month- and
-- year-to-date good-days ratio as of that day (HJ 663, standards.md 3): good days / valid days
-- x 100, each day judged under its own rule set, rounded half to even to 0.1 %. Budget: with N =
-- valid days so far + days left in the year (assumed valid), the target t % is met iff non-good
-- days <= floor(N x (100 - t) / 100); remaining budget = that minus non-good days so far
-- (shown as 0 when negative; target_reachable tells; all null for a day before any target).
-- Run after air_daily.
delete from kpi.air_good_days where local_date between $start_date and $cum_end_date;

insert into kpi.air_good_days
with daily as (
    select local_date, is_valid_day, is_good_day, excluded_missing_pollutant, status
    from kpi.air_daily
    where local_date between make_date(year($start_date::date), 1, 1) and $cum_end_date
),

targets as (
    select valid_from::date as valid_from, target::decimal(5, 2) as target_pct
    from ref.kpi_targets
    where kpi_id = 'air.good_days_ratio'
),

cumulative as (
    select
        local_date,
        year(local_date) as year,
        sum(is_good_day::integer) over ytd as ytd_good,
        sum(is_valid_day::integer) over ytd as ytd_valid,
        sum(excluded_missing_pollutant::integer) over ytd as ytd_excluded,
        sum((status <> 'final')::integer) over ytd as ytd_not_final,
        sum(is_good_day::integer) over mtd as mtd_good,
        sum(is_valid_day::integer) over mtd as mtd_valid,
        dayofyear(local_date) as days_elapsed,
        (make_date(year(local_date), 12, 31) - local_date)::integer as days_left
    from daily
    window
        ytd as (
            partition by year(local_date) order by local_date
            rows between unbounded preceding and current row
        ),
        mtd as (
            partition by year(local_date), month(local_date) order by local_date
            rows between unbounded preceding and current row
        )
),

with_target as (
    select c.*, t.target_pct, (t.target_pct * 100)::bigint as target_bp
    from cumulative as c
    asof left join targets as t on c.local_date >= t.valid_from
),

budget as (
    select
        *,
        ytd_valid - ytd_good as ytd_nongood,
        ((ytd_valid + days_left)::bigint * (10000 - target_bp)) // 10000
        - (ytd_valid - ytd_good) as budget_raw
    from with_target
)

select
    local_date,
    year,
    mtd_good,
    mtd_valid,
    case
        when mtd_valid > 0
            then (air_hediv(mtd_good::hugeint * 1000, mtd_valid::hugeint)::decimal(38, 0) * 0.1)
    end::decimal(4, 1),
    ytd_good,
    ytd_valid,
    case
        when ytd_valid > 0
            then (air_hediv(ytd_good::hugeint * 1000, ytd_valid::hugeint)::decimal(38, 0) * 0.1)
    end::decimal(4, 1),
    ytd_excluded,
    ytd_nongood,
    days_elapsed,
    days_left,
    target_pct,
    case when ytd_valid > 0 then ytd_good::bigint * 10000 >= target_bp * ytd_valid end,
    -- null (not 0) when no target applies: greatest() would skip the null
    case when budget_raw is not null then greatest(budget_raw, 0) end,
    budget_raw >= 0,
    round(100.0 * ytd_valid / days_elapsed, 1),
    case when ytd_not_final = 0 then 'final' else 'provisional' end,
    $computed_at
from budget
where local_date between $start_date and $cum_end_date;
