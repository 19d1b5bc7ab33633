-- The warehouse layers. staging: a batch as read from landing, inside one load transaction;
-- core: clean, typed, deduplicated observations and dimensions; dq: data-quality results.
create schema if not exists staging;
create schema if not exists core;
create schema if not exists dq;
create schema if not exists meta;
