"""Model lists: `GET /v1/models` (the inference node's, OpenAI shape) and `GET /models` (seed 001's manifest)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from fastapi import APIRouter

from server.deps import RuntimeDep
from server.errors import ApiError, inference_error
from server.runtime import Runtime

router = APIRouter(tags=["models"])


async def node_models(runtime: Runtime) -> list[dict[str, Any]]:
    """The inference node's `/models` list."""
    url = (runtime.settings.inference_base_url or "").rstrip("/") + "/models"
    where = f"the inference node at {runtime.settings.inference_base_url} (set INFERENCE_BASE_URL to change it)"
    down = runtime.supervisor.down() if runtime.supervisor is not None else None
    if down is not None:  # the embedded node is being restarted: say so
        raise inference_error(down, runtime.settings.inference_base_url)
    try:
        response = await runtime.http.get(
            url, headers={"Authorization": f"Bearer {runtime.settings.inference_api_key}"}
        )
    except httpx.TimeoutException as exc:
        raise ApiError(504, f"Timed out listing models of {where}.", code="inference_timeout") from exc
    except httpx.HTTPError as exc:
        raise ApiError(502, f"Could not connect to {where}: {exc}.", code="inference_unreachable") from exc
    if response.status_code >= 400:
        raise ApiError(502, f"Listing models of {where} answered HTTP {response.status_code}.",
                       code=f"inference_{response.status_code}")
    try:
        body = response.json()
        data = body["data"] if isinstance(body, dict) else body
        return [dict(m, object=m.get("object", "model")) for m in data]
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ApiError(502, f"{url} did not return an OpenAI model list.", code="inference_bad_models") from exc


@router.get("/v1/models")
async def list_models(runtime: RuntimeDep) -> dict[str, Any]:
    """The node's `/models` list, readable by OpenAI and Anthropic clients alike: OpenAI's `object`,
    `created`, `owned_by` and Anthropic's `type`, `display_name`, `created_at`, `has_more` in one body.
    Any of these ids can be passed as `model` (Claude Code: `--model <id>` or `ANTHROPIC_MODEL`)."""
    data = [_both_shapes(m) for m in await node_models(runtime)]
    return {"object": "list", "data": data, "has_more": False,
            "first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}


def _both_shapes(model: dict[str, Any]) -> dict[str, Any]:
    created = int(model.get("created") or 0)
    stamp = datetime.fromtimestamp(created, tz=UTC).isoformat().replace("+00:00", "Z")
    return {**model, "object": model.get("object", "model"), "created": created,
            "owned_by": model.get("owned_by", "inference-node"), "type": "model",
            "display_name": model.get("display_name") or model["id"], "created_at": stamp}


def read_manifest(path: Path) -> list[dict[str, str]]:
    """`[{"value", "label"}]` from a models.json; ApiError(503) naming the file and what is wrong."""
    hint = "(MODELS_MANIFEST_PATH)"
    try:
        items = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ApiError(503, f"The models manifest {path} {hint} does not exist.", code="manifest_missing") from exc
    except (OSError, ValueError) as exc:
        raise ApiError(503, f"The models manifest {path} {hint} is not readable JSON: {exc}.",
                       code="manifest_invalid") from exc
    if not isinstance(items, list) or not all(
        isinstance(i, dict) and isinstance(i.get("value"), str) and isinstance(i.get("label"), str) for i in items
    ):
        raise ApiError(503, f"The models manifest {path} {hint} must be a JSON array of "
                       '{"value": "...", "label": "..."} objects.', code="manifest_invalid")
    return [{"value": i["value"], "label": i["label"]} for i in items]


@router.get("/models")
async def models_manifest(runtime: RuntimeDep) -> list[dict[str, str]]:
    """The model picker's list: `MODELS_MANIFEST_PATH` read fresh on every request (no restart to add a
    model), or, without the setting, the inference node's models."""
    path = runtime.settings.models_manifest_path
    if path is None:
        return [{"value": m["id"], "label": m["id"]} for m in await node_models(runtime)]
    return await asyncio.to_thread(read_manifest, Path(path))
