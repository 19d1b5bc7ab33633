-- One restatement row per previously published value (value or text) that this run changed or
-- removed. New rows (never published before) are not restatements.
insert into kpi.restatements
with
before as (
    select *
    from kpi_values_before
),

after as (
    select *
    from kpi.pack_values
    where local_date between $start_date and $end_date
)

select
    b.kpi_id,
    b.local_date,
    b.dimension,
    b.value as old_value,
    a.value as new_value,
    b.value_text as old_value_text,
    a.value_text as new_value_text,
    b.status as old_status,
    now() as restated_at,
    $reason as reason
from before as b
left join after as a
    on b.kpi_id = a.kpi_id and b.local_date = a.local_date and b.dimension = a.dimension
where
    a.kpi_id is null
    or a.value is distinct from b.value
    or a.value_text is distinct from b.value_text;

drop table kpi_values_before;
