"""The stores the graph nodes use: episodes (SQLite + FTS5), their vectors (Chroma), sessions and the embedder."""
