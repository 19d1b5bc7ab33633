-- Scratch (an in-memory DuckDB, never the warehouse): the schema the copied inputs go to.
create schema if not exists core;
