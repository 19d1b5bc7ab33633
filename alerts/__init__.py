"""Near-real-time alerts: rules as pure state machines (``alerts.rules``), their reference data
(``alerts.reference``), a durable SQLite store (``alerts.store``) and the long-running MQTT service
(``alerts.service``, ``citypipe alerts``). See docs/alerts.md."""
