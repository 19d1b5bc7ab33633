-- Scratch: every waterlogging point's newest valid depth reading (null when none in the copied
-- window) and the highest alert level it is strictly above (GB 51222: above 15 cm is
-- waterlogging; closure and danger are adopted levels, per point in the catalogue).
with levels as (
    select
        max(default_cm) filter (where level_code = 'waterlogging') as waterlogging_cm,
        max(default_cm) filter (where level_code = 'closure') as closure_cm,
        max(default_cm) filter (where level_code = 'danger') as danger_cm
    from ref.waterlogging_levels
),

level_names as (
    select level_no::smallint as level_no, level_code::varchar as level_code
    from ref.waterlogging_levels
),

points as (
    select
        d.site_id,
        d.district,
        coalesce(d.waterlogging_cm, l.waterlogging_cm)::double as waterlogging_cm,
        coalesce(d.closure_cm, l.closure_cm)::double as closure_cm,
        coalesce(d.danger_cm, l.danger_cm)::double as danger_cm
    from core.dim_site as d
    cross join levels as l
    where d.kind = 'waterlogging_point'
),

newest as (
    select
        site_id,
        max(observed_at) as observed_at,
        arg_max(depth_cm, observed_at) as depth_cm
    from core.obs_waterlogging
    where
        is_valid and depth_cm is not null
        and list_contains(invalid_columns, 'depth_cm') is not true
    group by site_id
),

levelled as (
    select
        p.site_id,
        p.district,
        n.observed_at,
        n.depth_cm,
        p.waterlogging_cm,
        p.closure_cm,
        p.danger_cm,
        case
            when n.depth_cm > p.danger_cm then 3
            when n.depth_cm > p.closure_cm then 2
            when n.depth_cm > p.waterlogging_cm then 1
            when n.depth_cm is not null then 0
        end::smallint as level_no
    from points as p
    left join newest as n on p.site_id = n.site_id
)

select
    l.site_id,
    l.district,
    l.observed_at,
    l.depth_cm,
    l.level_no,
    coalesce(n.level_code, case when l.level_no = 0 then 'none' end) as level_code,
    l.waterlogging_cm,
    l.closure_cm,
    l.danger_cm
from levelled as l
left join level_names as n on l.level_no = n.level_no
