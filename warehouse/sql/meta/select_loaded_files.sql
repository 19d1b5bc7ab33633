-- Paths already handled (discovery skips them without re-hashing): the files loaded, and
-- every path a load has seen (copies of known files included), with their size and mtime.
select path, size_bytes, mtime_ns
from meta.load_ledger
union
select path, size_bytes, mtime_ns
from meta.ledger_paths;
