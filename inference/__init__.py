"""Talking to inference nodes: failover and circuit breakers (backends), the OpenAI-protocol call (plain_completions),
the embedded llama.cpp node (local_node) and its child process (processes), the chat-model factory (chat_models).
Nothing here serves HTTP or knows the graph."""
