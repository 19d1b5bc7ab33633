-- The stored site dimension in catalogue order (compared with the catalogue before a load
-- rewrites it).
select *
from core.dim_site
order by site_id;
