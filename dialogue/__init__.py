"""The dialogue graph: two participants talk about a topic, turn by turn, until it ends."""
