-- Water quality (GB 3838-2002, 地表水环境质量评价办法 2011): per-channel daily sums, per-item and
-- per-section period classes (day / month-to-date / year-to-date as of each day), county shares.

create table if not exists int.int_water_item_daily (
    site_id varchar not null,
    local_date date not null,
    channel varchar not null,
    n_results integer not null,
    sum_value decimal(38, 6) not null,
    min_value double,
    max_value double,
    computed_at timestamptz not null
);
comment on table int.int_water_item_daily is 'one row per (site_id, local_date, channel) with at least one valid result: count and sum of the valid results (the building block of period means)';

create table if not exists int.int_water_site_daily (
    site_id varchar not null,
    local_date date not null,
    n_rows integer not null,
    n_valid_rows integer not null,
    computed_at timestamptz not null
);
comment on table int.int_water_site_daily is 'one row per (site_id, local_date) with any reading: readings stored and valid readings';

create table if not exists kpi.kpi_period_water_item (
    as_of_date date not null,
    period varchar not null,
    period_start date not null,
    site_id varchar not null,
    item_code varchar not null,
    channel varchar not null,
    value double,
    unit varchar,
    n_results integer not null,
    item_class smallint,
    class_label varchar,
    is_assessment boolean,
    exceedance_multiple double,
    computed_at timestamptz not null
);
comment on table kpi.kpi_period_water_item is 'one row per (as_of_date, period, site_id, item_code): the period mean of valid results (period = day | month | year, from period_start to as_of_date), rounded to the item''s decimals, its GB 3838 class (1-5, 6 = worse than V) and exceedance multiple over Class III';

create table if not exists kpi.kpi_period_water_section (
    as_of_date date not null,
    period varchar not null,
    period_start date not null,
    site_id varchar not null,
    kind varchar not null,
    water_body_type varchar,
    target_class varchar,
    section_class smallint,
    class_label varchar,
    grade_zh varchar,
    grade_en varchar,
    is_class_ii_or_better boolean,
    is_class_iii_or_better boolean,
    meets_target boolean,
    is_compliant boolean,
    supplementary_measured boolean not null,
    main_pollutants varchar,
    main_pollutants_json json,
    n_items_assessed integer not null,
    n_results integer not null,
    expected_results integer not null,
    coverage_pct double,
    computed_at timestamptz not null
);
comment on table kpi.kpi_period_water_section is 'one row per (as_of_date, period, site_id) of a water section or drinking-water source: class = worst assessment item (single-factor), grade, target check, drinking compliance and up to three main pollutants when worse than Class III';

create table if not exists kpi.kpi_daily_water (
    local_date date not null,
    period varchar not null,
    period_start date not null,
    scope varchar not null,
    n_sites integer not null,
    n_assessed integer not null,
    n_class_ii_or_better integer,
    class_ii_share_pct double,
    n_class_iii_or_better integer,
    class_iii_share_pct double,
    n_meets_target integer,
    target_attainment_pct double,
    n_compliant integer,
    compliance_pct double,
    coverage_pct double,
    computed_at timestamptz not null
);
comment on table kpi.kpi_daily_water is 'one row per (local_date, period, scope): scope sections (kind water_section) or drinking_sources; shares over the sections assessed in the period ending local_date';
