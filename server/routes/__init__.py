"""One router module per route family."""
