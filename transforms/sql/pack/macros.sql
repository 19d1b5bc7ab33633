-- Helpers of the pack models (temp: defined per connection after ref.* is loaded).
create or replace temp macro pack_status(feed_name, day, as_of_date, coverage) as
    case
        when
            coverage is not null
            and day < as_of_date - (
                select coalesce(
                    arg_max(lookback_days, valid_from) filter (where valid_from <= as_of_date),
                    arg_min(lookback_days, valid_from)
                )::integer
                from ref.kpi_status
                where feed = feed_name
            )
            and coverage >= (
                select coalesce(
                    arg_max(min_coverage_pct, valid_from) filter (where valid_from <= as_of_date),
                    arg_min(min_coverage_pct, valid_from)
                )::double
                from ref.kpi_status
                where feed = feed_name
            )
            then 'final'
        else 'provisional'
    end;

create or replace temp macro pack_target(kpi, day) as (
    select arg_max(target, valid_from)::double
    from ref.kpi_targets
    where kpi_id = kpi and valid_from <= day
);
