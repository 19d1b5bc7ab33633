-- Warehouse: the site catalogue as loaded (core.dim_site), for the scratch copy.
select * from core.dim_site
