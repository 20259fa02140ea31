"""Process settings (one pydantic-settings class), read by every layer; per-run options live in graph/config.py."""
