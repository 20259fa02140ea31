"""Process settings: one pydantic-settings class read from the environment and `.env`."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Everything a process needs to know; per-run values live in the graph config instead."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # The inference node (any OpenAI-compatible server: llama.cpp, vLLM, Ollama, OpenAI).
    inference_base_url: str | None = Field(
        None, description="OpenAI-compatible base URL; unset: start the embedded local node (bundled model)."
    )
    inference_model: str = Field("local-model", description="Model name sent to the inference node.")
    inference_api_key: str = Field("not-needed", description="API key for the inference node, if it wants one.")
    inference_timeout_seconds: float = Field(120.0, gt=0, description="Bound of a whole inference call: retries, "
                                             "fallbacks and the whole stream (and of any single read).")
    inference_connect_timeout_seconds: float = Field(5.0, gt=0, description="Connect timeout to the node.")
    inference_max_retries: int = Field(2, ge=0, description="Retries on connection errors, 429 and 5xx.")
    inference_first_token_timeout_seconds: float = Field(120.0, gt=0, description="Wait for a stream's 1st token "
                                                         "from one node before the next is tried.")
    inference_fallback_urls: str = Field("", description="Comma-separated fallback nodes, tried in order.")
    circuit_failure_threshold: int = Field(5, ge=1, description="Consecutive failures that open a circuit.")
    circuit_cooldown_seconds: float = Field(30.0, gt=0, description="Open circuit's wait before a trial.")
    inference_response_format: Literal["auto", "schema", "schema-embedded", "prompt-only", "off"] = Field(
        "auto", description="Contract enforcement: JSON schema, prompt only, or none (auto: schema for the "
        "embedded node, prompt-only for a remote one).")
    max_tokens: int = Field(1024, gt=0, description="Reply token limit sent as `max_tokens`.")

    # The embedded node (used when INFERENCE_BASE_URL is unset).
    local_model_path: Path | None = Field(None, description="GGUF file; unset: the bundled SmolLM2-135M.")
    local_context_tokens: int = Field(4096, ge=512, description="Context window of the embedded node.")
    local_threads: int | None = Field(None, ge=1, description="Threads of the embedded node (unset: all cores).")
    local_max_tokens: int = Field(256, gt=0, description="Reply token limit with the embedded node.")
    temperature: float = Field(0.2, ge=0, le=2, description="Default sampling temperature.")

    # Storage.
    data_dir: Path = Field(Path("./data"), description="SQLite files: checkpoints.db and memory.db.")
    chroma_dir: Path = Field(Path("./chroma_data"), description="Chroma persistent directory.")
    database_url: str | None = Field(
        None, description="postgresql://… : checkpoints, sessions, episodes, entities and idempotency records in "
        "Postgres (the scale-out profile, any number of workers); unset: SQLite files in DATA_DIR.")
    chroma_url: str | None = Field(
        None, description="http://host:port of a Chroma server (`chroma run`) for the vectors; unset: the "
        "embedded Chroma directory CHROMA_DIR.")
    database_pool_size: int = Field(10, ge=2, le=200, description="Postgres connections a worker may open.")
    checkpoints_kept: int = Field(
        10, ge=0, description="Checkpoints kept per session (older ones and their writes are pruned in the "
        "background after each turn); 0 keeps every checkpoint.")
    vector_max_open_collections: int = Field(
        64, ge=1, le=4096, description="Scopes (projects) whose vector indexes stay loaded, files open; the least "
        "recently used is closed past this, and loaded again from disk when next needed.")
    vector_timeout_seconds: float = Field(
        10.0, gt=0, description="How long a vector-store call may wait; past it the vector process is restarted "
        "and recall goes on without vectors (X-Recall-Degraded: true).")

    # Memory.
    recent_messages: int = Field(12, ge=2, description="Messages of the session sent verbatim.")
    summary_trigger_messages: int = Field(24, ge=4, description="Fold older messages into the summary past this.")
    recall_top_k: int = Field(5, ge=0, le=50, description="Episodes recalled from earlier exchanges.")
    # 10 candidates and equal weights: the best of the variants measured on LoCoMo (BENCHMARKS.md, issue 20).
    recall_candidates: int = Field(10, ge=1, le=200, description="Candidates fetched per retriever.")
    recall_lexical_weight: float = Field(0.5, ge=0, description="Weight of BM25 ranks in the fusion.")
    recall_vector_weight: float = Field(0.5, ge=0, description="Weight of vector ranks in the fusion.")
    recall_vector_threshold: float = Field(0.3, ge=-1, le=1, description="Min cosine similarity of a vector hit.")
    episode_embedding: Literal["context-idle", "message", "exchange", "turns", "context"] = Field(
        "context-idle", description="An episode's vector: the exchange with the one before it, made when the "
        "service is idle (context-idle: until then the user message's, reused from recall; imports get it at "
        "once), its user message's (message: one embedding a turn), the whole exchange's (a second, longer "
        "embedding a turn), one per message (turns: the user message's and the reply's, a second embedding a "
        "turn), or the context vector at once (context: a second, longest embedding a turn).")
    refine_idle_seconds: float = Field(
        1.0, gt=0, description="With EPISODE_EMBEDDING=context-idle: how long no turn must have finished "
        "before episodes' message vectors are replaced by context vectors.")
    recall_session_spread: float = Field(
        0.3, ge=0, le=1, description="The share of recalled episodes given to the best hits of sessions not "
        "yet among them (the last places of the list; 0: by score alone).")
    recall_fusion: Literal["rrf", "convex"] = Field(
        "rrf", description="How BM25 and vector hits are fused: weighted reciprocal rank, or a weighted sum "
        "of normalised scores (convex; memory/fusion.py).")
    embedding_runtime: Literal["onnx", "torch"] = Field(
        "onnx", description="Run MiniLM on ONNX Runtime (exported once from the packaged weights into "
        "MODEL_CACHE_DIR; same vectors, ~3x faster) or on torch.")
    embedding_model_path: Path | None = Field(
        None, description="A sentence-transformers BERT model directory to embed with (unset: the packaged "
        "all-MiniLM-L6-v2). The store records its model: starting with another is refused until "
        "`orchestrator reembed`.")
    embedding_threads: int | None = Field(None, ge=1, description="Threads of one embedding (unset: 1, the "
                                          "fastest under load; 2 shave ~2 ms off a lone turn).")
    model_cache_dir: Path | None = Field(None, description="Where the ONNX export is kept (unset: "
                                         "$XDG_CACHE_HOME/orchestrator-node or ~/.cache/orchestrator-node).")
    entity_top_k: int = Field(5, ge=0, le=20, description="Known entities placed in the prompt at most.")
    entity_threshold: float = Field(0.35, ge=-1, le=1, description="Min cosine similarity of an entity hit.")
    models_manifest_path: Path | None = Field(None, description="models.json for GET /models, read per request.")
    context_tokens: int = Field(8192, ge=512, description="Context window of the inference node, in tokens.")
    active_session_window_seconds: int = Field(900, ge=1, description="A session counts as active this long.")
    health_probe_interval_seconds: float = Field(5.0, gt=0, description="How often the dependencies are probed "
                                                 "in the background; /health answers from the last results.")

    # Server.
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "info"
    log_format: Literal["auto", "json", "text"] = Field(
        "auto", description="auto: text on a terminal, JSON lines otherwise; json or text force either.")
    max_request_bytes: int = Field(1024 * 1024, ge=1024, description="Larger bodies get 413.")
    anthropic_max_request_bytes: int = Field(32 * 1024 * 1024, ge=1024,
                                             description="Larger bodies on /v1/messages get 413 (as Anthropic's).")
    max_message_chars: int = Field(100_000, ge=100, description="Longer messages get 400.")
    import_max_messages: int = Field(20_000, ge=1, description="Messages one POST /sessions/{id}/import may "
                                     "hold (more is a 400; `orchestrator import` sends a file in parts).")
    double_texting: Literal["queue", "reject"] = Field("queue", description="A 2nd turn on a busy session.")
    api_keys: str = Field("", description="Comma-separated keys; set: required on every route but /health.")
    api_key_scoped_sessions: bool = Field(
        False, description="With API_KEYS: sessions, projects and their memory are reachable only with the key "
        "that created them.")
    rate_limit_per_minute: int = Field(0, ge=0, description="Requests a minute per key (or client); 0: none.")
    cors_origins: str = Field("", description="Comma-separated allowed origins; empty: no CORS.")

    # Realtime voice turns (GET /orchestrate, a WebSocket: server/protocols/realtime/).
    vad_min_confidence: float = Field(0.5, ge=0, le=1, description="A `vad_end` below this confidence is ignored "
                                      "(the user may still be speaking).")
    realtime_silence_timeout_ms: int = Field(1500, ge=0, description="Silence after the last final fragment that "
                                             "ends the user's turn without a `vad_end`; 0: only `vad_end` does.")
    realtime_speculative_recall: bool = Field(True, description="Start recall on stable partial transcripts, "
                                              "before `vad_end`.")
    realtime_stable_ms: int = Field(120, ge=0, description="A transcript unchanged this long counts as stable "
                                    "(speculative recall starts on it).")
    realtime_max_frame_bytes: int = Field(65536, ge=1024, description="Larger client frames close the socket "
                                          "(1009).")
    realtime_chars_per_second: float = Field(15.0, gt=0, description="Speech rate that turns `played_ms` into "
                                             "characters heard.")
    # Routing by query class and the semantic cache (graph/routing.py, memory/semantic_cache.py).
    routing: bool = Field(True, description="Classify each turn (the graph's classify node) and follow its "
                          "class's route; false: every turn takes the default route.")
    classes_file: Path | None = Field(None, description="The classes file (JSON: examples, patterns and route "
                                      "options per class), re-read when it changes; unset: prompts/classes.json.")
    routes: str = Field("", description='JSON object: class → backend URL or model name, e.g. '
                        '{"small_talk": "http://small:8080/v1", "complex": "qwen2.5-32b"}.')
    semantic_cache: bool = Field(False, description="Answer repeated questions of cacheable classes from the "
                                 "semantic cache (same project, API key, model, system prompt and tools).")
    semantic_cache_threshold: float = Field(0.92, ge=0, le=1, description="MiniLM cosine similarity a question "
                                            "needs to an earlier one to get its cached answer.")
    semantic_cache_ttl_seconds: float = Field(3600.0, gt=0, description="Lifetime of a cached answer when its "
                                              "class sets no ttl_seconds.")

    # Synthetic dialogues between two participants (POST /dialogues).
    max_concurrent_dialogues: int = Field(4, ge=1, description="Dialogues running at once; the rest wait.")
    dialogue_rate_limit_per_minute: int = Field(0, ge=0, description="Requests a minute to one participant's "
                                                "node (a participant's requests_per_minute overrides); 0: none.")
    dialogue_allowed_base_urls: str = Field("", description="Comma-separated URL prefixes a participant's "
                                            "base_url must start with; empty: any URL.")
    dialogue_max_turns: int = Field(50, ge=1, description="The largest max_turns a request may ask for.")
    dialogue_max_batch: int = Field(1000, ge=1, description="Dialogues one batch request may queue.")
    dialogue_max_tokens: int = Field(256, gt=0, description="Reply token limit of one dialogue turn.")
    dialogue_closing_phrases: str = Field("goodbye,bye for now,talk to you later,take care,farewell",
                                          description="Comma-separated: a turn whose last sentence says one "
                                          "ends the dialogue (after min_turns).")
    dialogue_end_signal: str = Field("[END]", description="A participant's explicit end marker (stripped).")
    dialogue_repetition_ngram: int = Field(3, ge=1, le=8, description="Word n-gram size of the repetition check.")
    dialogue_repetition_ngram_threshold: float = Field(0.6, gt=0, le=1, description="Share of a turn's n-grams "
                                                       "found in one earlier turn that makes it a repetition.")
    dialogue_repetition_embedding_threshold: float = Field(0.95, gt=0, le=1, description="MiniLM cosine "
                                                           "similarity to an earlier turn that makes it one.")

    @staticmethod
    def _split(value: str) -> list[str]:
        return [v.strip() for v in value.split(",") if v.strip()]

    @property
    def fallback_urls(self) -> list[str]:
        return self._split(self.inference_fallback_urls)

    @property
    def dialogue_allowed_base_url_list(self) -> list[str]:
        return self._split(self.dialogue_allowed_base_urls)

    @property
    def dialogue_closing_phrase_list(self) -> list[str]:
        return self._split(self.dialogue_closing_phrases)

    @property
    def api_key_list(self) -> list[str]:
        return self._split(self.api_keys)

    @property
    def cors_origin_list(self) -> list[str]:
        return self._split(self.cors_origins)

    @field_validator("routes")
    @classmethod
    def _routes_json(cls, value: str) -> str:
        from graph.routing import parse_routes  # settings import nothing of the graph at start

        parse_routes(value)
        return value

    @field_validator("inference_base_url", "local_model_path", "models_manifest_path", "model_cache_dir",
                     "database_url", "chroma_url", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """`INFERENCE_BASE_URL=` (empty) in .env means unset, like leaving it out."""
        return None if isinstance(value, str) and not value.strip() else value

    @property
    def shared_storage(self) -> bool:
        """The scale-out profile: memory in Postgres (DATABASE_URL); several workers may share it."""
        return self.database_url is not None

    @property
    def checkpoints_path(self) -> Path:
        """SQLite file of the LangGraph checkpoints."""
        return self.data_dir / "checkpoints.db"

    @property
    def memory_path(self) -> Path:
        """SQLite file of sessions and episodes (the source of truth for memory)."""
        return self.data_dir / "memory.db"

    @property
    def dialogues_path(self) -> Path:
        """SQLite file of the dialogue jobs (their turns are in the checkpoints)."""
        return self.data_dir / "dialogues.db"
