-- Delete the data files scheduled for deletion before $older_than. One row per file removed.
call ducklake_cleanup_old_files('lake', older_than => $older_than);
