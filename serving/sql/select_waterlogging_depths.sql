-- The current depth of each waterlogging point: its newest valid depth reading.
with readings as (
    select * from core.obs_waterlogging
),

valid_depths as (
    select site_id, observed_at, depth_cm, rain_mm
    from readings
    where
        is_valid
        and depth_cm is not null
        and not list_contains(coalesce(invalid_columns, []), 'depth_cm')
        and ($site_id is null or site_id = $site_id)
)

select
    site_id,
    max(observed_at) as observed_at,
    arg_max(depth_cm, observed_at) as depth_cm,
    arg_max(rain_mm, observed_at) as rain_mm
from valid_depths
group by site_id
order by site_id;
