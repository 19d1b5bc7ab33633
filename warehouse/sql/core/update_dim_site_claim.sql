-- Claim the site dimension for this transaction (migration 0011): another writer replacing it
-- at the same time then conflicts on a lake instead of inserting the sites a second time.
update meta.claim_dim_site
set
    claims = claims + 1,
    claimed_by = 'core.dim_site',
    claimed_at = now();
