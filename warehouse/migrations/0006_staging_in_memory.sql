-- Staging moves to connection-temporary tables created by each load (core/merge_obs*.sql):
-- writing the batch to a file table first cost a second full write of every batch (about as
-- long as the core insert itself) for rows that are deleted before the commit anyway.
-- The staging schema stays for the layer's name; it holds no tables.
drop table if exists staging.obs_air;
drop table if exists staging.obs_water;
drop table if exists staging.obs_waterlogging;
drop table if exists staging.obs_traffic;
