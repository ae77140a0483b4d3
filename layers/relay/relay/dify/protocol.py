"""Dify's vocabulary: app modes and their routes, a turn's question and answer, ids and metadata."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from enum import Enum

SNIPPET_CHARS = 300


class Route(Enum):
    """A Dify API route and whether it can answer in blocking mode."""

    CHAT = ("/chat-messages", True)
    AGENT = ("/chat-messages", False)  # Dify refuses blocking mode for agent apps
    COMPLETION = ("/completion-messages", True)
    WORKFLOW = ("/workflows/run", True)

    def __init__(self, path: str, can_block: bool) -> None:
        self.path = path
        self.can_block = can_block

    @property
    def has_conversations(self) -> bool:
        return self.path == "/chat-messages"

    def stop_path(self, task_id: str) -> str:
        return f"/workflows/tasks/{task_id}/stop" if self is Route.WORKFLOW else f"{self.path}/{task_id}/stop"


# Dify's app `mode` (GET /info) → the route that serves it.
APP_ROUTES = {
    "chat": Route.CHAT,
    "advanced-chat": Route.CHAT,
    "agent-chat": Route.AGENT,
    "agent": Route.AGENT,
    "completion": Route.COMPLETION,
    "workflow": Route.WORKFLOW,
}
# The relay's DIFY_APP_MODE names → Dify's app mode, and back: a widget sees the relay's names.
CONFIGURED_MODES = {
    "chat": "chat",
    "chatflow": "advanced-chat",
    "agent": "agent-chat",
    "completion": "completion",
    "workflow": "workflow",
}
RELAY_MODES = {**{dify: relay for relay, dify in CONFIGURED_MODES.items()}, "agent": "agent"}


@dataclass(frozen=True)
class Question:
    """One turn as Dify sees it."""

    query: str
    user: str
    conversation_id: str | None = None
    inputs: dict = field(default_factory=dict)
    image_ids: tuple[str, ...] = ()  # images this user uploaded, by Dify's upload file id


@dataclass(frozen=True)
class Upload:
    """A file for Dify's multipart routes: its name (Dify reads the type from the extension), bytes, type."""

    name: str
    data: bytes
    content_type: str


@dataclass(frozen=True)
class Answer:
    text: str
    conversation_id: str | None
    message_id: str | None
    mode: str
    usage: dict | None = None
    sources: list | None = None
    task_id: str | None = None


# What a streamed answer is made of, as it arrives, before its Answer closes it.
@dataclass(frozen=True)
class Started:
    """Dify has taken the turn: its ids are known (a workflow has no conversation or message)."""

    conversation_id: str | None
    message_id: str | None
    task_id: str | None


@dataclass(frozen=True)
class Delta:
    """More text for the end of the answer."""

    text: str


@dataclass(frozen=True)
class Replaced:
    """The answer so far is replaced whole (output moderation, or an agent's final text)."""

    text: str


@dataclass(frozen=True)
class Ping:
    """Dify is still working and has nothing to say yet."""


Part = Started | Delta | Replaced | Ping


@dataclass(frozen=True)
class HistoryPage:
    """Messages of a conversation, oldest first, and whether older ones remain."""

    messages: list[dict]
    has_more: bool


def is_uuid(value: str) -> bool:
    try:
        return str(uuid.UUID(value)) == value.lower()
    except (ValueError, AttributeError, TypeError):
        return False


_USAGE = {
    "prompt_tokens": "promptTokens",
    "completion_tokens": "completionTokens",
    "total_tokens": "totalTokens",
}


def usage_of(metadata: dict) -> dict | None:
    usage = metadata.get("usage")
    if not isinstance(usage, dict):
        return None
    counts = {ours: usage[theirs] for theirs, ours in _USAGE.items() if isinstance(usage.get(theirs), int)}
    return counts or None


def sources_of(metadata: dict) -> list | None:
    resources = metadata.get("retriever_resources")
    if not isinstance(resources, list):
        return None
    sources = [
        {
            "title": str(item.get("document_name") or item.get("dataset_name") or ""),
            "snippet": str(item.get("content") or "")[:SNIPPET_CHARS],
        }
        for item in resources
        if isinstance(item, dict)
    ]
    return sources or None


def json_object(raw: bytes | str) -> dict | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def text_or_none(value) -> str | None:
    return value if isinstance(value, str) and value else None
