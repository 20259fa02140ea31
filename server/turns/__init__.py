"""server/turns."""
