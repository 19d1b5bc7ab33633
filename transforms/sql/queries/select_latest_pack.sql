-- The newest day's pack row of every (kpi_id, dimension): what the MQTT publisher keeps
-- retained under city/{city}/kpi/{kpi_id}/{dimension}; the columns of select_pack.sql, then the
-- day.
select
    kpi_id,
    dimension,
    value,
    value_text,
    unit,
    target,
    status,
    coverage_pct,
    details,
    computed_at,
    local_date
from kpi.pack_values
qualify row_number() over (partition by kpi_id, dimension order by local_date desc) = 1
order by kpi_id asc, dimension asc;
