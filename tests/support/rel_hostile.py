"""Hostile strings shared by the reliability suite (MQTT ingest and the pages check).

Each string is an injection payload for one sink: SQL (DuckDB/Postgres), HTML, an inline
script, an attribute, a URL, or a template engine. Payloads that execute set
``window.__pwned`` so a browser check can assert it never became truthy.
"""

from __future__ import annotations

HOSTILE_STRINGS: list[str] = [
    "<img src=x onerror=window.__pwned=1>",
    "</script><script>window.__pwned=1</script>",
    "\"'><svg onload=window.__pwned=1>",
    "javascript:window.__pwned=1",
    "'; DROP TABLE core.readings; --",
    "{{7*7}}",
    "${7*7}",
    "<script>window.__pwned=1</script>",
    "' OR '1'='1",
    "1); DELETE FROM landing.readings; --",
    '<iframe srcdoc="<script>parent.__pwned=1</script>"></iframe>',
    '" onmouseover="window.__pwned=1" x="',
    '<a href="javascript:window.__pwned=1">x</a>',
    "<style>@import 'javascript:window.__pwned=1';</style>",
    "`;window.__pwned=1;`",
    "<details open ontoggle=window.__pwned=1>",
]
