"""create_app(settings=None): the FastAPI app, with a lifespan that opens and closes the runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from config.settings import Settings
from server.api import entities, health, memory, models, projects, sessions, transfer, turns
from server.api import metrics as metrics_routes
from server.dialogues.service import DialogueService
from server.errors import install_error_handlers
from server.metrics import Metrics
from server.middleware import ApiKeys, BodyLimit, RequestLog
from server.protocols import dialogues, seed001
from server.protocols.anthropic import routes as anthropic_routes
from server.protocols.langserve import install_langserve
from server.protocols.openai import routes as openai_routes
from server.protocols.realtime import routes as realtime_routes
from server.protocols.realtime.hub import RealtimeHub
from server.runtime import Runtime
from server.storage_outage import install_outage_handler
from server.web.routes import install_web


def create_app(settings: Settings | None = None, chat_model=None) -> FastAPI:
    """Build the app. `chat_model` replaces the OpenAI-protocol client (tests use a fake model)."""
    settings = settings or Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await Runtime.open(settings, chat_model, metrics)
        app.state.runtime = runtime
        try:
            app.state.dialogues = await DialogueService.open(runtime)
            try:
                yield
            finally:
                await app.state.dialogues.close()  # before the checkpointer it writes to
        finally:
            await runtime.close()

    # /docs loads Swagger UI from the app itself (fastapi-offline ships it), not from a CDN. No /redoc: ReDoc
    # fetches its logo from the internet whatever it is given.
    app = FastAPIOffline(
        redoc_url=None,
        title="orchestrator-node",
        version="0.1.0",
        description="A LangGraph service that gives an LLM inference node a memory.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.realtime = RealtimeHub(metrics)  # live voice sockets (GET /orchestrate) and their metrics
    install_error_handlers(app)
    install_outage_handler(app)  # the Postgres profile's database out of reach: 503 storage_unavailable
    # Outermost first: ids and logs see everything, then size, then keys and rate (before any body is read).
    app.add_middleware(ApiKeys, keys=settings.api_key_list, per_minute=settings.rate_limit_per_minute)
    # Claude Code resends the whole conversation on every call: the Messages API has its own, larger limit.
    app.add_middleware(BodyLimit, max_bytes=settings.max_request_bytes,
                       limits={"/v1/messages": (settings.anthropic_max_request_bytes, "ANTHROPIC_MAX_REQUEST_BYTES")})
    if settings.cors_origin_list:
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origin_list, allow_methods=["*"],
                           allow_headers=["*"], expose_headers=["X-Session-Id", "X-Request-Id", "X-Recall-Degraded"])
    app.add_middleware(RequestLog, metrics=metrics)
    for module in (health, metrics_routes, openai_routes, anthropic_routes, models, seed001, sessions, projects,
                   turns, entities, memory, dialogues, realtime_routes, transfer):
        app.include_router(module.router)
    install_langserve(app)
    install_web(app)  # the web page at / (server/web/)
    return app
