"""Ingestion: MQTT feeds -> contract checks -> durable Parquet landing files (and quarantine)."""
