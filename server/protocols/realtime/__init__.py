"""Realtime voice turns over a WebSocket (`GET /orchestrate`), with barge-in: seed 003's protocol."""
