"""The FastAPI service around the memory graph."""
