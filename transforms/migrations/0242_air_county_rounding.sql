-- Issue 9 item 4: the county daily value may be the mean of the stations' published (rounded)
-- values instead of their exact means. A rule parameter (ref.aqi_rules: county_mean_of_rounded,
-- default false), pivoted into int.air_rule_sets; the table's last column (inserted by position).
alter table int.air_rule_sets add column if not exists county_mean_of_rounded boolean;
comment on column int.air_rule_sets.county_mean_of_rounded is 'true: county daily value = mean of the station values rounded as published (integers, CO 0.1, half-even); false: mean of the exact station means';
