-- The zones natural days are cut in, by the air rule sets (one expected).
select distinct natural_day_timezone from int.air_rule_sets;
