"""Dialogue jobs: the durable queue, the runner under MAX_CONCURRENT_DIALOGUES, export."""
