"""The Anthropic door (Claude Code): /v1/messages and count_tokens: request schemas, event formatting, routes."""
