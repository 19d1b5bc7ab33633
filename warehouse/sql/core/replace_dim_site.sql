-- Replace the site dimension from the catalogue rows registered as dim_site_rows.
delete from core.dim_site;

insert into core.dim_site by name
select
    *,
    now() as loaded_at
from dim_site_rows;
