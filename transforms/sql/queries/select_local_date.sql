-- The natural day of instant $t in zone $tz.
select timezone($tz, $t::timestamptz)::date as local_date;
