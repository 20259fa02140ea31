"""Session names: a title the model gets wrong (role labels, the exchange echoed, a sentence) is refused, and
the session is named from its first user message instead."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from server.app import create_app
from server.turns.naming import choose_name, fallback_name
from tests.fake_backend import FakeBackend

MATH_QUESTION = "Can you help me solve 3x + 5 = 20 for x? I am stuck on it."
ANSWER = "I'm here to help with any math problem you have. Subtract 5, then divide by 3: x = 5."


def naming_node(title: str):
    """A node that answers the turn, then answers the naming request with `title`."""

    def respond(body: dict) -> str:
        last = str(body["messages"][-1]["content"])
        if last.startswith("Give this conversation a short title"):
            return title
        return json.dumps({"assistant_response": ANSWER, "tool_calls": []})

    return respond


def name_after_first_turn(settings, title: str) -> str:
    with FakeBackend(naming_node(title)) as node:
        settings.inference_base_url = node.base_url
        with TestClient(create_app(settings)) as client:
            r = client.post("/chat", json={"sessionId": "math", "message": MATH_QUESTION})
            assert r.status_code == 200, r.text
            client.portal.call(client.app.state.runtime.turns.drain)  # naming runs after the reply
            return client.get("/sessions/math").json()["name"]


@pytest.mark.parametrize("title", [
    "User: I'm here to help with any math problem…",  # what the bundled model answered
    "Assistant: Solving for x",  # a role label
    "I'm here to help",  # the reply echoed
    "Help me solve 3x",  # the question echoed
    "A conversation in which the user asks for help with an equation and gets it",  # a sentence, not a title
    "",  # nothing
])
def test_a_title_that_is_no_title_falls_back_to_the_first_message(settings, title):
    assert name_after_first_turn(settings, title) == "Can you help me solve 3x…"


def test_a_good_title_is_kept(settings):
    assert name_after_first_turn(settings, '"Solving a linear equation."') == "Solving a linear equation"


def test_choose_name_keeps_short_titles_that_share_words_with_the_question():
    assert choose_name("Linear equation help", MATH_QUESTION, ANSWER) == "Linear equation help"
    assert choose_name("Title: Math homework", MATH_QUESTION, ANSWER) == "Math homework"


def test_fallback_name_from_the_first_message():
    assert fallback_name("  hello there  ") == "Hello there"
    assert fallback_name("What is RRF? Explain it in detail please") == "What is RRF"
    assert fallback_name("\n\nOne two three four five six seven eight") == "One two three four five six…"
    assert fallback_name("") == ""
