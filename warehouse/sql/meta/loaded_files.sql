-- Files already in the ledger (discovery skips them without re-hashing).
select path, size_bytes, mtime_ns, sha256
from meta.load_ledger;
