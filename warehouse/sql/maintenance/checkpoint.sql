-- Single DuckDB file: write the WAL into the file and reclaim free blocks (DuckDB's own
-- compaction; there are no small files to merge).
checkpoint;
