-- GX validation runs (one per feed batch) that validated readings of the local days
-- $start_date..$end_date (the batch's landing partitions local_date=...), newest first:
-- outcome, statistics, the readings the run flagged (per expectation) and the stored Data Docs
-- page (a file path under the site; the API turns it into a link).
with runs as (
    select
        *,
        list_sort(list_distinct(list_transform(
            files,
            lambda f: try_cast(regexp_extract(f, 'local_date=([0-9]{4}-[0-9]{2}-[0-9]{2})', 1) as date)
        ))) as local_dates
    from dq.validation_runs
    where $feed is null or feed = $feed
),

chosen as (
    select * from runs
    where list_filter(local_dates, lambda d: d between $start_date and $end_date) <> []
),

flagged as (
    select * from dq.flagged_readings
    where validation_run_id in (select c.validation_run_id from chosen as c)
),

flagged_by_expectation as (
    select
        validation_run_id, expectation,
        count(distinct(site_id, device_id, lane, observed_at)) as readings
    from flagged
    group by all
),

flagged_per_run as (
    select
        validation_run_id,
        list({ 'expectation': expectation, 'readings': readings } order by expectation) as flagged
    from flagged_by_expectation
    group by all
),

flagged_readings_per_run as (
    select validation_run_id, count(distinct(site_id, device_id, lane, observed_at)) as flagged_readings
    from flagged
    group by all
)

select
    r.validation_run_id, r.load_run_id, r.feed, r.suite_name, r.suite_version,
    r.started_at, r.ended_at, r.local_dates,
    r.rows, r.success, r.evaluated_expectations, r.successful_expectations,
    r.unsuccessful_expectations, r.success_percent,
    r.statistics_json::varchar as statistics_json,
    coalesce(n.flagged_readings, 0) as flagged_readings,
    coalesce(f.flagged, []) as flagged,
    r.data_docs_url as data_docs_path
from chosen as r
left join flagged_per_run as f using (validation_run_id)
left join flagged_readings_per_run as n using (validation_run_id)
order by r.started_at desc, r.feed asc, r.validation_run_id asc
limit $limit offset $offset;
