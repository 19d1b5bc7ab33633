"""The base every stage stands on: settings, the site catalogue, the SQL toolkit."""
