select count(*) as n from kpi.restatements;
