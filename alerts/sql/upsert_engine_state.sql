-- The rules' state after the last evaluated batch (one row).
insert into engine_state (checkpoint_id, saved_at, state)
values (1, $saved_at, $state)
on conflict (checkpoint_id) do update set
    saved_at = excluded.saved_at,
    state = excluded.state;
