"""The turn engine the doors share: the runner (one turn of the graph: ordering, streaming, rollback), the
per-session locks, access checks, side sessions for other conversations, session ids and names, the prompt preview."""
