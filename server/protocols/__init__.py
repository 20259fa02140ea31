"""The wire protocols, one package or module each: its schemas, its formatting and its routes (OpenAI, Anthropic,
seed 001's /chat, LangServe)."""
