-- Warehouse: the intraday tables hold only the days the run recomputes, so each run replaces
-- them whole (a day the daily run has packed since the last run goes with them).
delete from kpi.intraday_air_hourly;

delete from kpi.intraday_air_day;

delete from kpi.intraday_traffic_hourly;

delete from kpi.intraday_waterlogging_events;

delete from kpi.intraday_waterlogging_depths;
