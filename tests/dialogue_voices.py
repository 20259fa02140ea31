"""Scripted participants for the dialogue tests: responders for FakeBackend that answer in their own voice,
differently each time (or repeat, or say goodbye, when told), and record when each request ran."""

from __future__ import annotations

import hashlib
import json
import random
import re
import threading
import time
from typing import Any

VOCABULARY = ("river mountain copper lantern orbit violin harvest signal marble thunder garden pepper canyon "
              "rocket velvet meadow glacier compass ember falcon harbor island jungle kettle lemon mirror "
              "nectar oyster prism quartz saddle tulip umbrella valley walnut yacht zephyr anchor bamboo cactus "
              "dolphin engine feather granite helmet igloo jacket kiwi ladder magnet needle olive pillow quiver "
              "ribbon shadow tunnel uniform vessel whistle xylophone yogurt zipper acorn beacon candle dune "
              "eclipse fossil geyser hammock iris jigsaw kayak lagoon mosaic nebula oasis pebble quill reef "
              "sapphire tundra").split()


def topic_of(body: dict[str, Any]) -> str:
    """The dialogue's topic, from the system prompt the service sent."""
    system = str(body["messages"][0]["content"])
    found = re.search(r"talking with .+? about: (.*)", system)
    return found.group(1).strip() if found else ""


class Voice:
    """A responder (`FakeBackend(Voice("Ann"))`): a fresh sentence per request, seeded by the prompt.

    `goodbye_at`: on its n-th turn in a dialogue (1-based) it says goodbye. `repeat`: every turn is the
    same text. `delay`: seconds each reply takes. `intervals` holds (topic, started, ended) per request.
    """

    def __init__(self, name: str, goodbye_at: int | None = None, repeat: bool = False, delay: float = 0.0,
                 end_signal_at: int | None = None) -> None:
        self.name, self.goodbye_at, self.repeat, self.delay = name, goodbye_at, repeat, delay
        self.end_signal_at = end_signal_at
        self.intervals: list[tuple[str, float, float]] = []
        self.lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> str:
        started = time.monotonic()
        if self.delay:
            time.sleep(self.delay)
        own_turn = 1 + sum(1 for m in body["messages"] if m["role"] == "assistant")
        topic = topic_of(body)
        if self.repeat:
            text = f"{self.name} insists that the only thing that matters about {topic} is the price of copper."
        else:
            seed = hashlib.sha256(json.dumps(body["messages"]).encode()).hexdigest()
            words = random.Random(seed).sample(VOCABULARY, 12)
            text = f"{self.name} thinks of " + " ".join(words) + "."
        if own_turn == self.goodbye_at:
            text += " Thanks for the chat, goodbye!"
        if own_turn == self.end_signal_at:
            text += " [END]"
        with self.lock:
            self.intervals.append((topic, started, time.monotonic()))
        return text


def max_overlap(intervals: list[tuple[str, float, float]]) -> int:
    """The most dialogues active at once, a dialogue being active from its first request's start to its last
    request's end (as the nodes saw them)."""
    spans: dict[str, list[float]] = {}
    for topic, start, end in intervals:
        span = spans.setdefault(topic, [start, end])
        span[0], span[1] = min(span[0], start), max(span[1], end)
    events = sorted([(s, 1) for s, _ in spans.values()] + [(e, -1) for _, e in spans.values()],
                    key=lambda ev: (ev[0], ev[1]))
    best = active = 0
    for _, step in events:
        active += step
        best = max(best, active)
    return best
