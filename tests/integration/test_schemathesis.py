"""Schemathesis over every operation of `/openapi.json`, against the real server on 127.0.0.1 with the scripted
inference node: whatever it sends (valid, invalid, boundary values, wrong types, NUL bytes), no answer is a 5xx,
plain or inside an event stream, and every 4xx is in its door's error format.

Bounded: `FUZZ_EXAMPLES` (25) generated cases per operation in the fuzzing phase, beside the examples and
coverage phases' own cases, and `FUZZ_SECONDS` (6) per operation, so the run takes 2-3 minutes on 2 cores
(`FUZZ_SEED`: 16 unless set; `random` for a new one each run)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import httpx
import hypothesis
import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.pytest.lazy import get_all_tests

from config.settings import Settings
from server.app import create_app
from tests.integration.servers import ServiceProcess

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))
SECONDS_PER_OPERATION = float(os.environ.get("FUZZ_SECONDS", "6"))
CLIENT_ERROR_TYPES = {"invalid_request_error", "authentication_error", "permission_error", "not_found_error",
                      "conflict_error", "request_too_large", "rate_limit_error"}
OPENAI_ERROR_KEYS = {"message", "type", "param", "code"}


def _schema() -> schemathesis.specs.openapi.schemas.OpenApiSchema:
    """The app's OpenAPI schema, built without starting it (so operations are known at collection time);
    the requests go to the real server started below."""
    app = create_app(Settings(_env_file=None, data_dir=Path("unused"), chroma_dir=Path("unused")))
    config = {"generation": {"max-examples": EXAMPLES}, "phases": {"stateful": {"enabled": False}}}
    return schemathesis.openapi.from_dict(app.openapi(), config=schemathesis.Config.from_dict(config))


def _seed() -> int | None:
    """A fixed seed by default, so `make test` sends the same cases every run; FUZZ_SEED=random explores."""
    seed = os.environ.get("FUZZ_SEED", "16")
    return None if seed == "random" else int(seed)



def _settings() -> hypothesis.settings:
    """Cases per operation, no per-case deadline (the server answers in its own time), and no health checks:
    a schema of many invalid shapes filters many drawn inputs out, which is what a fuzzer of inputs does."""
    return hypothesis.settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(hypothesis.HealthCheck),
                               database=None)


SCHEMA = _schema()
# schemathesis's own pytest integration (`from_fixture`) does not run on pytest 9.2 (it sets a node attribute
# pytest renamed), so each operation's Hypothesis test (examples, coverage and fuzzing phases) is built here.
TESTS = {operation.label: test for operation, test in
         (result.ok() for result in get_all_tests(schema=SCHEMA, test_func=lambda case, **kw: _check(case, **kw),
                                                  settings=_settings(), seed=_seed(), as_strategy_kwargs=None,
                                                  given_kwargs=None))}


@pytest.fixture(scope="module")
def service(backend, tmp_path_factory):
    with ServiceProcess(tmp_path_factory.mktemp("schemathesis"), {"INFERENCE_BASE_URL": backend.base_url}) as svc:
        yield svc


def test_every_served_operation_is_fuzzed(service):
    served = httpx.get(service.base_url + "/openapi.json", timeout=30).json()
    labels = {f"{method.upper()} {path}" for path, item in served["paths"].items() for method in item}
    assert labels == set(TESTS) and len(labels) >= 35


@pytest.mark.parametrize("label", sorted(TESTS))
def test_no_request_gets_a_server_error(label, service):
    sent: list[int] = []
    TESTS[label](base_url=service.base_url, started=time.monotonic(), sent=sent)
    assert len(sent) >= min(EXAMPLES, 5), f"only {len(sent)} requests reached {label}"


def _check(case, *, base_url: str, started: float, sent: list[int]) -> None:
    if time.monotonic() - started > SECONDS_PER_OPERATION:
        return  # the time bound: this operation has had its share
    response = case.call(base_url=base_url, timeout=30)
    sent.append(response.status_code)
    case.validate_response(response, checks=[not_a_server_error, error_in_the_doors_shape,
                                             no_server_error_inside_a_stream])


@schemathesis.check
def error_in_the_doors_shape(ctx, response, case) -> None:
    """A 4xx carries the error body of the API it came through: Anthropic's on `/v1/messages`, OpenAI's
    elsewhere (also on `/agent`, whose plain errors match the OpenAI routes')."""
    if not 400 <= response.status_code < 500:
        return
    body = response.json()
    if case.operation.path.startswith("/v1/messages"):
        assert body["type"] == "error" and set(body["error"]) == {"type", "message"}, body
        assert body["error"]["type"] in CLIENT_ERROR_TYPES, body
    else:
        assert set(body) == {"error"} and set(body["error"]) == OPENAI_ERROR_KEYS, body
        assert body["error"]["type"] in CLIENT_ERROR_TYPES, body


@schemathesis.check
def no_server_error_inside_a_stream(ctx, response, case) -> None:
    """A stream that started with 200 does not end in a server-side error event either."""
    if "text/event-stream" not in response.headers.get("content-type", [""])[0]:
        return
    for block in response.text.replace("\r\n", "\n").split("\n\n"):
        lines = block.strip().splitlines()
        event = next((line[6:].strip() for line in lines if line.startswith("event:")), None)
        data = "\n".join(line[5:].strip() for line in lines if line.startswith("data:"))
        try:
            payload = json.loads(data) if data and data != "[DONE]" else None
        except ValueError:
            continue
        if not isinstance(payload, dict):
            continue
        if event == "error" and "status_code" in payload:  # LangServe
            assert payload["status_code"] < 500, payload
        elif "error" in payload:  # OpenAI, Anthropic and the seed routes' stream errors
            error = payload["error"]
            assert isinstance(error, dict) and error.get("type") in CLIENT_ERROR_TYPES, payload
