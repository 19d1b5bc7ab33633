-- Every warehouse connection runs in UTC, so results never depend on the machine's time zone;
-- local days are cut explicitly with timezone(...) in SQL.
set TimeZone = 'UTC';
