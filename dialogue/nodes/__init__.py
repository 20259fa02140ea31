"""The dialogue graph's nodes, one per module."""
