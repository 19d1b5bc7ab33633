"""The sensor simulator behind `citypipe simulate` and the local broker of the demo, tests and
benchmarks. Development tooling: production (`citypipe ingest`) never imports it."""
