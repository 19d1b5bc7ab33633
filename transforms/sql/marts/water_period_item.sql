-- kpi.water_period_item for as-of days $start_date..$end_date. Period value = arithmetic mean
-- of the valid results from period_start to as_of_date (day, month-to-date, year-to-date),
-- rounded to the item's decimals, then classified by GB 3838-2002 Table 1 (single factor).
-- noqa: disable=LT02
-- (SQLFluff's duckdb dialect does not indent `create macro` bodies: LT02 would dedent them.)
-- Exact decimal rounding, GB/T 8170 (round half to even, 四舍六入五成双), of a / b for
-- non-negative integers.
create or replace temp macro water_half_even_div(a, b) as
    (a // b)
    + case when 2 * (a % b) > b or (2 * (a % b) = b and (a // b) % 2 = 1) then 1 else 0 end;

-- The mean total / n rounded to digits decimals (digits <= 6), total an exact decimal(.., 6).
create or replace temp macro water_round_mean(total, n, digits) as
    (case when total < 0 then -1 else 1 end)
    * water_half_even_div(
        abs((total * 1000000)::hugeint), n::hugeint * (10 ** (6 - digits))::hugeint
    )::double
    / 10 ** digits;

-- Exceedance multiple value / limit - 1 to 2 decimals, exactly (value above the limit, both
-- with at most 6 decimals).
create or replace temp macro water_exceedance(v, lim) as
    water_half_even_div(
        100 * (round(v * 1000000)::hugeint - round(lim * 1000000)::hugeint),
        round(lim * 1000000)::hugeint
    )::double
    / 100;
-- noqa: enable=LT02

delete from kpi.water_period_item where as_of_date between $start_date and $end_date;

insert into kpi.water_period_item
with
item_daily as (
    select site_id, local_date, channel, n_results, sum_value
    from int.water_daily_item
    where local_date between date_trunc('year', $start_date::date)::date and $end_date
),

sites as (
    select site_id, water_body_type
    from core.dim_site
    where kind in ('water_section', 'drinking_water_source')
),

limits as (
    select *
    from ref.gb3838_limits
    where channel is not null
),

as_of_days as (
    select unnest(generate_series($start_date::date, $end_date::date, interval 1 day))::date
        as as_of_date
),

-- Month- and year-to-date totals of each (site, channel) at every day with results. The totals of
-- an as-of day are those of its last day with results in the period (an ASOF join below), so
-- no as-of day re-adds every day of its year.
running as (
    select
        site_id,
        channel,
        local_date,
        date_trunc('month', local_date)::date as month_start,
        date_trunc('year', local_date)::date as year_start,
        n_results,
        sum_value,
        sum(n_results) over month_w as mtd_n_results,
        sum(sum_value) over month_w as mtd_sum_value,
        sum(n_results) over year_w as ytd_n_results,
        sum(sum_value) over year_w as ytd_sum_value
    from item_daily
    window
        month_w as (
            partition by site_id, channel, date_trunc('month', local_date)
            order by local_date rows unbounded preceding
        ),
        year_w as (
            partition by site_id, channel, date_trunc('year', local_date)
            order by local_date rows unbounded preceding
        )
),

series as (
    select distinct site_id, channel, year_start
    from running
),

as_of_series as (
    select
        a.as_of_date,
        date_trunc('month', a.as_of_date)::date as month_start,
        s.site_id,
        s.channel,
        s.year_start
    from as_of_days as a
    inner join series as s on s.year_start = date_trunc('year', a.as_of_date)
),

-- A period without results for a (site, channel) has no row (the ASOF inner join finds none).
period_sums as (
    select
        local_date as as_of_date,
        'day' as period,
        local_date as period_start,
        site_id,
        channel,
        n_results::integer as n_results,
        sum_value::decimal(38, 6) as sum_value
    from running
    where local_date between $start_date and $end_date

    union all

    select
        a.as_of_date,
        'month',
        a.month_start,
        a.site_id,
        a.channel,
        r.mtd_n_results::integer,
        r.mtd_sum_value::decimal(38, 6)
    from as_of_series as a
    asof inner join running as r
        on
            a.site_id = r.site_id
            and a.channel = r.channel
            and a.month_start = r.month_start
            and a.as_of_date >= r.local_date

    union all

    select
        a.as_of_date,
        'year',
        a.year_start,
        a.site_id,
        a.channel,
        r.ytd_n_results::integer,
        r.ytd_sum_value::decimal(38, 6)
    from as_of_series as a
    asof inner join running as r
        on
            a.site_id = r.site_id
            and a.channel = r.channel
            and a.year_start = r.year_start
            and a.as_of_date >= r.local_date
),

valued as (
    select
        s.*,
        l.item_code,
        l.item_no,
        l.unit,
        l.direction,
        l.is_assessment,
        l.class_i,
        l.class_ii,
        l.class_iii,
        l.class_iv,
        l.class_v,
        l.range_lo,
        l.range_hi,
        -- Compare the mean at the precision it is reported with (float noise never flips a class).
        water_round_mean(s.sum_value, s.n_results, l.decimals::integer) as value
    from period_sums as s
    inner join sites as st on s.site_id = st.site_id
    inner join limits as l
        on
            s.channel = l.channel
            and (l.water_body = 'all' or st.water_body_type = l.water_body)
            and s.as_of_date >= l.valid_from
),

classified as (
    select
        *,
        case
            when direction = 'max'
                then
                    case
                        when value <= class_i then 1
                        when value <= class_ii then 2
                        when value <= class_iii then 3
                        when value <= class_iv then 4
                        when value <= class_v then 5
                        else 6
                    end
            when direction = 'min'
                then
                    case
                        when value >= class_i then 1
                        when value >= class_ii then 2
                        when value >= class_iii then 3
                        when value >= class_iv then 4
                        when value >= class_v then 5
                        else 6
                    end
            -- pH: one range for every class; outside it the item is worse than Class V.
            when direction = 'range' then case
                when value between range_lo and range_hi then 1
                else 6
            end
        end as item_class
    from valued
),

item_names as (
    select channel, any_value(item_code) as item_code, any_value(unit) as unit
    from limits
    group by channel
),

-- Channels measured but without a limit for this water body (TN in rivers, conductivity...).
unlimited as (
    select
        s.as_of_date,
        s.period,
        s.period_start,
        s.site_id,
        coalesce(n.item_code, s.channel) as item_code,
        s.channel,
        water_round_mean(s.sum_value, s.n_results, 4) as value,
        n.unit,
        s.n_results,
        null::smallint as item_class,
        null::varchar as class_label,
        false as is_assessment,
        null::double as exceedance_multiple
    from period_sums as s
    inner join sites as st on s.site_id = st.site_id
    left join item_names as n on s.channel = n.channel
    anti join limits as l
        on
            s.channel = l.channel
            and (l.water_body = 'all' or st.water_body_type = l.water_body)
),

classified_out as (
    select
        c.as_of_date,
        c.period,
        c.period_start,
        c.site_id,
        c.item_code,
        c.channel,
        c.value,
        c.unit,
        c.n_results,
        c.item_class,
        g.class_label,
        c.is_assessment,
        -- 2011 method: exceedance multiple = value / Class III limit - 1 for items worse than
        -- III, not computed for pH and DO (range / at-least items).
        case
            when c.direction = 'max' and c.item_class > 3
                then water_exceedance(c.value, c.class_iii)
        end as exceedance_multiple,
        now() as computed_at
    from classified as c
    left join ref.water_grades as g on c.item_class = g.class_no
)

select * from classified_out
union all by name
select *, now() as computed_at
from unlimited;
