with state_imported as (
    select * from engine_state
)

select saved_at, state
from state_imported
where checkpoint_id = 1;
