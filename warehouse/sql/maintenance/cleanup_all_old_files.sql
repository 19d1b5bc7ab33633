-- Delete every data file scheduled for deletion, however recently. One row per file removed.
call ducklake_cleanup_old_files('lake', cleanup_all => true);
