-- noqa: disable=LT02
-- (SQLFluff's duckdb dialect does not indent `create macro` bodies: LT02 would dedent them.)
-- Provisional vs final, the one definition of the rule for every KPI (Python reads it through
-- these macros too). A value is final once its day is older than the late-data look-back (as of
-- the computation date: day < as_of_date - lookback_days) AND its coverage reaches
-- min_coverage_pct; until then it is provisional. The rule in force on as_of_date applies;
-- before the first rule's valid_from, that first rule (a backfill must not lose it).
-- Parameters come from ref.kpi_status (reference/standards/kpi_status.csv).
create or replace temp macro kpi_lookback_days(feed_name, as_of_date) as (
    select
        coalesce(
            arg_max(lookback_days, valid_from) filter (where valid_from <= as_of_date),
            arg_min(lookback_days, valid_from)
        )::integer
    from ref.kpi_status
    where feed = feed_name
);

create or replace temp macro kpi_min_coverage_pct(feed_name, as_of_date) as (
    select
        coalesce(
            arg_max(min_coverage_pct, valid_from) filter (where valid_from <= as_of_date),
            arg_min(min_coverage_pct, valid_from)
        )::double
    from ref.kpi_status
    where feed = feed_name
);

create or replace temp macro kpi_status(feed_name, day, as_of_date, coverage) as
    case
        when
            coverage is not null
            and day < as_of_date - kpi_lookback_days(feed_name, as_of_date)
            and coverage >= kpi_min_coverage_pct(feed_name, as_of_date)
            then 'final'
        else 'provisional'
    end;
