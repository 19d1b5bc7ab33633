-- Scratch only: the day-so-far value. The daily models then average the valid hours so far
-- instead of requiring a full day's count (GB 3095: >= 20 hourly values, >= 14 O3 8h windows,
-- >= 20 hours for the O3 1h maximum). Hourly values keep every rule (these are day-grain only).
update int.air_rule_sets
set
    min_hours_per_day = 1,
    min_o3_8h_per_day = 1,
    min_hours_o3_1h_max = 1
