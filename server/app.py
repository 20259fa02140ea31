"""create_app(settings=None): the FastAPI app, with a lifespan that opens and closes the runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from server.errors import install_error_handlers
from server.langserve_routes import install_langserve
from server.routes import chat, chat_completions, entities, health, memory, models, projects, sessions
from server.runtime import Runtime
from server.settings import Settings


def create_app(settings: Settings | None = None, chat_model=None) -> FastAPI:
    """Build the app. `chat_model` replaces the OpenAI-protocol client (tests use a fake model)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await Runtime.open(settings, chat_model)
        app.state.runtime = runtime
        try:
            yield
        finally:
            await runtime.close()

    app = FastAPI(
        title="orchestrator-node",
        version="0.1.0",
        description="A LangGraph service that gives an LLM inference node a memory.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    for module in (health, chat_completions, models, chat, sessions, projects, entities, memory):
        app.include_router(module.router)
    install_langserve(app)
    return app
