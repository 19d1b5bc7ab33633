-- The schemas the KPI layer writes, before any of its tables.
create schema if not exists "int";
create schema if not exists kpi;
create schema if not exists ref;
