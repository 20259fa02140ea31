"""server/protocols/anthropic."""
