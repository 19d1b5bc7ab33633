-- Which of the given checksums were loaded before.
select sha256
from meta.load_ledger
where list_contains($checksums, sha256);
