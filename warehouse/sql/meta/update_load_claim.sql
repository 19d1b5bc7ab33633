-- Claim the feed's landing load for this transaction (migration 0011): an overlapping load of
-- the same feed then conflicts on a lake and is redone, re-reading the ledger.
update meta.claim_load_{{feed}}
set
    claims = claims + 1,
    claimed_by = $load_run_id,
    claimed_at = $loaded_at;
