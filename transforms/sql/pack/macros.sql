-- Helpers of the pack models (temp: defined per connection after ref.* is loaded).
create or replace temp macro pack_target(kpi, day) as (
    select arg_max(target, valid_from)::double
    from ref.kpi_targets
    where kpi_id = kpi and valid_from <= day
);
