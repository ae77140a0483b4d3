"""Session records: which Dify conversation and user a widget session belongs to."""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass, replace
from typing import Protocol

from . import telemetry
from .apps import DEFAULT_APP
from .dynamodb import DynamoDBTable, StoreUnavailable

MAX_IMAGES = 50  # images one session may upload; their ids ride on every read of the session


@dataclass(frozen=True)
class Session:
    session_id: str
    user: str
    conversation_id: str | None
    expires_at: int  # 0: not saved yet
    image_ids: frozenset[str] = frozenset()  # Dify upload file ids of the images this session uploaded


class SessionStore(Protocol):
    def load(self, session_id: str, now: float) -> Session | None:
        """The live session, or None when unknown or expired."""

    def save(self, session: Session, *, new: bool = False) -> None:
        """Saves the session's user, conversation and expiry. A `new` session replaces whatever an expired
        one left under its id; otherwise the image ids are kept as stored."""

    def add_image(self, session: Session, image_id: str, expires_at: int) -> bool:
        """Adds an uploaded image to the session, saving it anew if it is not saved yet (expires_at 0);
        False when it holds MAX_IMAGES."""

    def delete(self, session_id: str) -> None: ...


def new_session_id() -> str:
    return secrets.token_urlsafe(24)  # 192 random bits, URL-safe


def resume(store: SessionStore, session_id: str | None, user: str | None, now: float) -> Session:
    """The live session `session_id`, or a new unsaved one (also while the store is down: the visitor is
    answered, as a new conversation)."""
    stored = None
    if session_id:
        try:
            stored = store.load(session_id, now)
        except StoreUnavailable as error:
            telemetry.degraded("session not loaded; going on as a new session", error)
    return stored or unsaved(session_id, user)


def unsaved(session_id: str | None, user: str | None) -> Session:
    """A session not saved yet, under the id the widget sent or a new one; its user is its id if not given."""
    session_id = session_id or new_session_id()
    return Session(session_id=session_id, user=user or session_id, conversation_id=None, expires_at=0)


class InMemorySessionStore:
    """Sessions for local runs and tests; lost when the process ends."""

    def __init__(self) -> None:
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def load(self, session_id: str, now: float) -> Session | None:
        with self._lock:
            session = self._sessions.get(session_id)
            if session is not None and session.expires_at <= now:
                del self._sessions[session_id]
                return None
            return session

    def save(self, session: Session, *, new: bool = False) -> None:
        with self._lock:
            stored = None if new else self._sessions.get(session.session_id)
            images = stored.image_ids if stored is not None else frozenset()
            self._sessions[session.session_id] = replace(session, image_ids=images)

    def add_image(self, session: Session, image_id: str, expires_at: int) -> bool:
        with self._lock:
            stored = None if session.expires_at == 0 else self._sessions.get(session.session_id)
            stored = stored or replace(session, conversation_id=None, image_ids=frozenset())
            if len(stored.image_ids) >= MAX_IMAGES:
                return False
            expires = max(stored.expires_at, expires_at)
            self._sessions[session.session_id] = replace(
                stored, image_ids=stored.image_ids | {image_id}, expires_at=expires
            )
            return True

    def delete(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)


class DynamoDBSessionStore(DynamoDBTable):
    """Sessions in DynamoDB, one item per session; the table's TTL removes idle ones."""

    def __init__(self, table_name: str, client=None, *, app_id: str = DEFAULT_APP) -> None:
        super().__init__(table_name, client)
        # Each app's sessions under keys of their own; the default app's are those from before apps.
        self.prefix = "session#" if app_id == DEFAULT_APP else f"app#{app_id}#session#"

    def load(self, session_id: str, now: float) -> Session | None:
        with self.unavailable_as_store_error():
            item = self.client.get_item(
                TableName=self.table_name, Key={"pk": {"S": self.prefix + session_id}}, ConsistentRead=True
            ).get("Item")
        # TTL deletion lags by up to days: an expired item still readable is treated as gone.
        if not item or int(item["expiresAt"]["N"]) <= now:
            return None
        return Session(
            session_id=session_id,
            user=item["user"]["S"],
            conversation_id=item.get("conversationId", {}).get("S"),
            expires_at=int(item["expiresAt"]["N"]),
            image_ids=frozenset(item.get("imageIds", {}).get("SS", ())),
        )

    def save(self, session: Session, *, new: bool = False) -> None:
        if new:  # a put: nothing an expired session left under this id (TTL lags) carries over
            item = {
                "pk": {"S": self.prefix + session.session_id},
                "user": {"S": session.user},
                "expiresAt": {"N": str(session.expires_at)},
            }
            if session.conversation_id:
                item["conversationId"] = {"S": session.conversation_id}
            with self.unavailable_as_store_error():
                self.client.put_item(TableName=self.table_name, Item=item)
            return
        # An update, not a put: an image uploaded while a turn runs is not overwritten by the turn's save.
        values = {":user": {"S": session.user}, ":expires": {"N": str(session.expires_at)}}
        update = "SET #user = :user, expiresAt = :expires"
        if session.conversation_id:
            values[":conversation"] = {"S": session.conversation_id}
            update += ", conversationId = :conversation"
        else:
            update += " REMOVE conversationId"
        with self.unavailable_as_store_error():
            self.client.update_item(
                TableName=self.table_name,
                Key={"pk": {"S": self.prefix + session.session_id}},
                UpdateExpression=update,
                ExpressionAttributeNames={"#user": "user"},
                ExpressionAttributeValues=values,
            )

    def add_image(self, session: Session, image_id: str, expires_at: int) -> bool:
        if session.expires_at == 0:
            item = {
                "pk": {"S": self.prefix + session.session_id},
                "user": {"S": session.user},
                "expiresAt": {"N": str(expires_at)},
                "imageIds": {"SS": [image_id]},
            }
            with self.unavailable_as_store_error():
                self.client.put_item(TableName=self.table_name, Item=item)
            return True
        with self.unavailable_as_store_error():
            try:
                self.client.update_item(
                    TableName=self.table_name,
                    Key={"pk": {"S": self.prefix + session.session_id}},
                    UpdateExpression="SET #user = :user, expiresAt = :expires ADD imageIds :image",
                    ConditionExpression="attribute_not_exists(imageIds) OR size(imageIds) < :max",
                    ExpressionAttributeNames={"#user": "user"},
                    ExpressionAttributeValues={
                        ":user": {"S": session.user},
                        ":expires": {"N": str(max(session.expires_at, expires_at))},
                        ":image": {"SS": [image_id]},
                        ":max": {"N": str(MAX_IMAGES)},
                    },
                )
            except self.client.exceptions.ConditionalCheckFailedException:
                return False
        return True

    def delete(self, session_id: str) -> None:
        with self.unavailable_as_store_error():
            self.client.delete_item(TableName=self.table_name, Key={"pk": {"S": self.prefix + session_id}})
