-- The ref schema holds only the standards folder's tables: rebuilt from it on every load.
drop schema if exists ref cascade;
create schema ref;
