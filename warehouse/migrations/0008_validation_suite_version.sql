-- Which rules a validation run used: sha256 of the suite's expectations and the bounds and
-- rule parameters in force (expectations.suites.suite_version). Null for runs before 0008.
alter table dq.validation_runs add column suite_version varchar;
