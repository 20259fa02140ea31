"""Who may reach a session or a project (API_KEY_SCOPED_SESSIONS), opening a session on first use, and the
refusals a turn meets before it runs: 404 for another key's session or project, 409 for a busy session."""

from __future__ import annotations

from memory.sessions import SessionStore, visible_to
from server.errors import ApiError


def busy_error(session_id: str) -> ApiError:
    """409 for a second turn on a session mid-turn, with DOUBLE_TEXTING=reject."""
    return ApiError(409, f"Session '{session_id}' is answering another message; retry when it is done "
                    "(DOUBLE_TEXTING=queue waits instead).", code="session_busy")


def unreachable_session(session_id: str) -> ApiError:
    """404 for a session another API key owns (API_KEY_SCOPED_SESSIONS); whose it is, is not said."""
    return ApiError(404, f"No session '{session_id}' is reachable with this API key; use another session id.",
                    code="session_not_found")


def unreachable_project(project_id: str) -> ApiError:
    """404 for a project another API key owns (API_KEY_SCOPED_SESSIONS)."""
    return ApiError(404, f"No project '{project_id}' is reachable with this API key.", param="X-Project-Id",
                    code="project_not_found")


def check_reachable(sessions: SessionStore, session_id: str, project_id: str | None, owner: str | None) -> None:
    """404 if the session or the project exists but belongs to another owner (no-op when not scoping)."""
    if owner is None:
        return
    session = sessions.get(session_id)
    if session is not None and not visible_to(session, owner):
        raise unreachable_session(session_id)
    project = sessions.get_project(project_id) if project_id else None
    if project_id and project is not None and not visible_to(project, owner):
        raise unreachable_project(project_id)


def open_session(sessions: SessionStore, session_id: str, project_id: str | None, owner: str | None = None) -> dict:
    """The session, created on first use (its project too, if it is new), owned by `owner`. An existing
    session keeps its project; reading it first keeps a write transaction off every later turn. With an
    owner, another owner's session or project is a 404."""
    check_reachable(sessions, session_id, project_id, owner)
    session = sessions.get(session_id)
    if session is None:
        if project_id and sessions.get_project(project_id) is None:
            sessions.create_project(project_id, project_id, None, owner)
            check_reachable(sessions, session_id, project_id, owner)  # another key may have made it meanwhile
        session = sessions.ensure(session_id, project_id, owner)
    if not visible_to(session, owner):  # made by another key since the check
        raise unreachable_session(session_id)
    return session
