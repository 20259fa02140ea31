"""`GET /v1/models`: the inference node's models, as the node lists them."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import APIRouter

from server.deps import RuntimeDep
from server.errors import ApiError

router = APIRouter(tags=["openai"])


@router.get("/v1/models")
async def list_models(runtime: RuntimeDep) -> dict[str, Any]:
    """Proxy the node's `/models` list (OpenAI shape)."""
    url = runtime.settings.inference_base_url.rstrip("/") + "/models"
    where = f"the inference node at {runtime.settings.inference_base_url} (set INFERENCE_BASE_URL to change it)"
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
        return {"object": "list", "data": [dict(m, object=m.get("object", "model")) for m in data]}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ApiError(502, f"{url} did not return an OpenAI model list.", code="inference_bad_models") from exc
