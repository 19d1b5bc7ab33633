-- The peak-hour TPI is the TPI of the VKT-weighted TTI of the peak hours (standards §6), no longer
-- a mean of hourly TPIs: only the table's doc changes (a new file, so existing warehouses get it).
comment on table kpi.kpi_daily_traffic is 'one row per (local_date, scope): peak-hour TPI (TPI of the VKT-weighted TTI over the peak hours and the scope''s detectors), AM/PM peak TPIs likewise, hours whose TPI is moderate or heavy, detector-hours at moderate or heavy congestion level';
