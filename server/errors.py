"""Errors in the OpenAI shape `{"error": {"message", "type", "param", "code"}}`, with the right status;
on the Anthropic routes (`/v1/messages...`) in Anthropic's `{"type": "error", "error": {"type", "message"}}`."""

from __future__ import annotations

import logging
import math

import openai
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from inference.backends import BackendDown, CallTimeout, CircuitOpenError

log = logging.getLogger(__name__)

_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
          404: "not_found_error", 409: "conflict_error", 413: "request_too_large", 422: "invalid_request_error",
          429: "rate_limit_error"}


class ApiError(Exception):
    """An error a route answers with."""

    def __init__(self, status: int, message: str, *, type_: str | None = None, param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.headers = headers or {}
        self.status = status
        self.message = message
        # A 4xx without a type of its own (405, 406, 415...) is still the client's doing.
        self.type = type_ or _TYPES.get(status, "invalid_request_error" if status < 500 else "server_error")
        self.param = param
        self.code = code

    def body(self) -> dict:
        """The JSON body."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def anthropic_body(self) -> dict:
        """The JSON body in Anthropic's shape, with Anthropic's error types."""
        kind = _ANTHROPIC_TYPES.get(self.status) or ("invalid_request_error" if self.status < 500 else
                                                     "overloaded_error" if self.status == 503 else "api_error")
        return {"type": "error", "error": {"type": kind, "message": self.message}}


_ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                    404: "not_found_error", 409: "invalid_request_error", 413: "request_too_large",
                    422: "invalid_request_error", 429: "rate_limit_error"}
ANTHROPIC_PATHS = ("/v1/messages",)


def error_body(path: str, error: ApiError) -> dict:
    """The error's body in the shape of the API the path belongs to."""
    return error.anthropic_body() if path.startswith(ANTHROPIC_PATHS) else error.body()


def inference_error(exc: BaseException, base_url: str | None) -> ApiError:
    """Translate a failure of the inference node into 502/503/504 that names the URL and the setting."""
    where = f"the inference node at {base_url} (set INFERENCE_BASE_URL to change it)"
    if isinstance(exc, ApiError):
        return exc
    if isinstance(exc, CircuitOpenError):
        wait = max(1, math.ceil(exc.retry_after))
        return ApiError(503, f"Inference is failing fast: the circuit is open for {', '.join(exc.urls)} after "
                        f"repeated failures; retry in {wait} s (INFERENCE_FALLBACK_URLS adds fallbacks).",
                        type_="inference_unavailable", code="circuit_open", headers={"Retry-After": str(wait)})
    if isinstance(exc, BackendDown):
        wait = max(1, math.ceil(exc.retry_after))
        return ApiError(503, exc.message, type_="inference_unavailable", code="inference_node_down",
                        headers={"Retry-After": str(wait)})
    if isinstance(exc, CallTimeout):
        return ApiError(504, f"Timed out: {exc.message}; talking to {where}.", type_="inference_timeout",
                        code="inference_timeout")
    if isinstance(exc, openai.APITimeoutError):
        return ApiError(504, f"Timed out waiting for {where}.", type_="inference_timeout", code="inference_timeout")
    if isinstance(exc, openai.APIConnectionError):
        return ApiError(502, f"Could not connect to {where}: {exc}.", type_="inference_unreachable",
                        code="inference_unreachable")
    if isinstance(exc, openai.APIStatusError):
        status = 503 if exc.status_code in (429, 503) else 502
        return ApiError(status, f"{where[:1].upper()}{where[1:]} answered {exc.status_code}: {exc.message}",
                        type_="inference_error", code=f"inference_{exc.status_code}")
    return ApiError(502, f"The turn failed while talking to {where}: {type(exc).__name__}: {exc}",
                    type_="inference_error", code="inference_failed")


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    problems, param = [], None
    for err in exc.errors()[:5]:
        if not isinstance(err, dict):  # LangServe raises it with plain strings ("Invalid JSON body")
            problems.append(str(err))
            continue
        loc = [str(p) for p in err.get("loc", ()) if p != "body"]
        param = param or (".".join(loc) or None)
        problems.append(f"{'.'.join(loc) or 'body'}: {err.get('msg')}")
    return "Invalid request: " + "; ".join(problems), param


def install_error_handlers(app: FastAPI) -> None:
    """Every error leaves in the API's own shape; unexpected ones without a stack trace."""

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(request.url.path, exc), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        message, param = _validation_message(exc)
        return JSONResponse(error_body(request.url.path, ApiError(400, message, param=param)), status_code=400)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        error = ApiError(exc.status_code, str(exc.detail))
        return JSONResponse(error_body(request.url.path, error), status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        error = ApiError(500, "Internal error; see the server log.")
        return JSONResponse(error_body(request.url.path, error), status_code=500)
