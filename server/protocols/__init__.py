"""server/protocols."""
