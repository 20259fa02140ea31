"""One graph node per module, each a factory `make_<node>(deps)` returning an async node function."""
