"""The dialogue routes: queue one dialogue or a batch, read one, list them, cancel one, export as JSONL.
Errors in the service's OpenAI shape (server/errors.py). With API_KEY_SCOPED_SESSIONS, a key reaches only
the dialogues it queued, as it does sessions."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from server.deps import MAX_OFFSET, OwnerDep
from server.dialogues.export import ExportFilter
from server.dialogues.schemas import (
    BatchQueued,
    DialogueBatchCreate,
    DialogueCreate,
    DialoguePublic,
    DialogueQueued,
    DialoguesPage,
    Status,
)
from server.dialogues.service import DialogueService
from server.errors import ApiError

router = APIRouter(prefix="/dialogues", tags=["dialogues"])
JSONL_TYPES = ("application/x-ndjson", "application/jsonl", "application/x-jsonlines", "text/plain")


def get_dialogues(request: Request) -> DialogueService:
    """The dialogue service the lifespan opened."""
    return request.app.state.dialogues


DialoguesDep = Annotated[DialogueService, Depends(get_dialogues)]


def _invalid(exc: ValidationError, where: str = "") -> ApiError:
    problems, param = [], None
    for err in exc.errors()[:5]:
        loc = ".".join(str(p) for p in err.get("loc", ()))
        param = param or loc or None
        problems.append(f"{where}{loc or 'body'}: {err.get('msg')}")
    return ApiError(400, "Invalid request: " + "; ".join(problems), param=param)


def _batch_from_jsonl(text: str) -> list[DialogueCreate]:
    dialogues = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            dialogues.append(DialogueCreate.model_validate_json(line))
        except ValidationError as exc:
            raise _invalid(exc, f"line {number}: ") from None
    if not dialogues:
        raise ApiError(400, "The JSONL upload has no dialogues: send one JSON object a line, each at least "
                       '{"topic": "..."}.', param="body")
    return dialogues


@router.post("", status_code=202, response_model=DialogueQueued)
async def create_dialogue(body: DialogueCreate, service: DialoguesDep, owner: OwnerDep) -> DialogueQueued:
    """Queue one dialogue; it runs when a slot is free (MAX_CONCURRENT_DIALOGUES)."""
    _, ids = await service.submit([body], batch=False, owner=owner)
    return DialogueQueued(id=ids[0], status="queued")


# The JSON body's schema inline (the route reads its body itself, to take JSONL too, so FastAPI does not list
# the model among the components); its participants refer to ParticipantCreate, which POST /dialogues lists.
_BATCH_SCHEMA = {k: v for k, v in DialogueBatchCreate.model_json_schema(
    ref_template="#/components/schemas/{model}").items() if k != "$defs"}


@router.post("/batch", status_code=202, response_model=BatchQueued, openapi_extra={"requestBody": {
    "content": {"application/json": {"schema": _BATCH_SCHEMA},
                "application/x-ndjson": {"schema": {"type": "string",
                                                    "description": "one DialogueCreate object a line"}}},
    "required": True}})
async def create_batch(request: Request, service: DialoguesDep, owner: OwnerDep) -> BatchQueued:
    """Queue many dialogues: JSON `{"topics": [...], "participants", "min_turns", "max_turns"}`, or a JSONL
    upload (Content-Type application/x-ndjson) with one `POST /dialogues` body a line."""
    raw = await request.body()
    ctype = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "The body is not UTF-8 text.", param="body") from None
    if ctype in JSONL_TYPES:
        dialogues = _batch_from_jsonl(text)
    else:
        try:
            dialogues = DialogueBatchCreate.model_validate_json(text or "{}").dialogues()
        except ValidationError as exc:
            raise _invalid(exc) from None
    batch_id, ids = await service.submit(dialogues, batch=True, owner=owner)
    assert batch_id is not None
    return BatchQueued(batch_id=batch_id, dialogues=[DialogueQueued(id=i, status="queued") for i in ids])


@router.get("", response_model=DialoguesPage)
async def list_dialogues(service: DialoguesDep, owner: OwnerDep, status: Status | None = None,
                         batch: str | None = None,
                         topic: str | None = None, cursor: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
                         limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> DialoguesPage:
    """Dialogues in creation order, with the counts by status (a batch's progress with `?batch=`)."""
    rows, counts, next_cursor = await service.page(status, batch, topic, cursor, limit, owner)
    return DialoguesPage(dialogues=rows, counts=counts, next_cursor=next_cursor)


@router.get("/export")
async def export_dialogues(
    service: DialoguesDep,
    owner: OwnerDep,
    format: Literal["openai", "sharegpt"] = "openai",
    status: Literal["done", "failed"] = "done",
    batch: str | None = None,
    topic: str | None = None,
    min_turns: Annotated[int | None, Query(ge=0)] = None,
    min_distinct_2: Annotated[float | None, Query(ge=0, le=1)] = None,
    max_repetition: Annotated[float | None, Query(ge=0, le=1)] = None,
    ending_reason: str | None = None,
) -> StreamingResponse:
    """Stream finished dialogues as JSONL, filtered by status, batch, topic (a substring) and quality."""
    keep = ExportFilter(min_turns=min_turns, min_distinct_2=min_distinct_2, max_repetition=max_repetition,
                        ending_reason=ending_reason)
    lines = service.export(format, status, batch, topic, keep, owner)
    return StreamingResponse(lines, media_type="application/x-ndjson",
                             headers={"Content-Disposition": f'attachment; filename="dialogues-{format}.jsonl"'})


@router.get("/{dialogue_id}", response_model=DialoguePublic)
async def get_dialogue(dialogue_id: str, service: DialoguesDep, owner: OwnerDep) -> DialoguePublic:
    """Status, turns so far, metrics."""
    return await service.get(dialogue_id, owner)


@router.delete("/{dialogue_id}", response_model=DialoguePublic)
async def cancel_dialogue(dialogue_id: str, service: DialoguesDep, owner: OwnerDep) -> DialoguePublic:
    """Cancel a queued or running dialogue (its turns so far stay readable); 409 once it has finished."""
    return await service.cancel(dialogue_id, owner)



