"""The memory graph: recall → assemble → infer → parse_tools → persist → summarise."""
