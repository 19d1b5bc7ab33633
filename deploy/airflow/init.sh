#!/bin/sh
# One-shot `airflow-init` service of docker-compose.yml: migrate Airflow's metadata database and
# create the warehouse writers' pool, sized from citypipe's settings (steps.writer_pool_slots:
# 1 on the single DuckDB file, CITYPIPE_WAREHOUSE_WRITER_SLOTS on a lake). Idempotent: it runs at
# every `docker compose up`, and after an upgrade it applies Airflow's new migrations.
set -eu
airflow db migrate
slots=$(python -c 'from common.settings import get_settings; from steps import writer_pool_slots; print(writer_pool_slots(get_settings()))')
airflow pools set citypipe_duckdb "$slots" "citypipe warehouse writers (docs/warehouse.md)"
echo "airflow-init: metadata migrated, pool citypipe_duckdb has $slots slot(s)"
