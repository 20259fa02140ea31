"""server/protocols/openai."""
