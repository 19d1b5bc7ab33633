-- Rewrite runs of small adjacent Parquet files of every lake table into fewer, larger ones.
-- Row lineage is kept in the merged file, so time travel to older snapshots still works; the
-- replaced files are only scheduled for deletion (cleanup_old_files removes them).
call ducklake_merge_adjacent_files('lake');
