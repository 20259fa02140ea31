"""The OpenAI door: /v1/chat/completions (and /stream): request schemas, chunk formatting, routes."""
