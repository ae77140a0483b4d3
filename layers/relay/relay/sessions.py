"""Session records: which Dify conversation and user a widget session belongs to."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol

from .dynamodb import DynamoDBTable


@dataclass(frozen=True)
class Session:
    session_id: str
    user: str
    conversation_id: str | None
    expires_at: int


class SessionStore(Protocol):
    def load(self, session_id: str, now: float) -> Session | None:
        """The live session, or None when unknown or expired."""

    def save(self, session: Session) -> None: ...

    def delete(self, session_id: str) -> None: ...


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

    def save(self, session: Session) -> None:
        with self._lock:
            self._sessions[session.session_id] = session

    def delete(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)


class DynamoDBSessionStore(DynamoDBTable):
    """Sessions in DynamoDB, one item per session; the table's TTL removes idle ones."""

    PREFIX = "session#"

    def load(self, session_id: str, now: float) -> Session | None:
        with self.unavailable_as_store_error():
            item = self.client.get_item(
                TableName=self.table_name, Key={"pk": {"S": self.PREFIX + session_id}}, ConsistentRead=True
            ).get("Item")
        # TTL deletion lags by up to days: an expired item still readable is treated as gone.
        if not item or int(item["expiresAt"]["N"]) <= now:
            return None
        return Session(
            session_id=session_id,
            user=item["user"]["S"],
            conversation_id=item.get("conversationId", {}).get("S"),
            expires_at=int(item["expiresAt"]["N"]),
        )

    def save(self, session: Session) -> None:
        item = {
            "pk": {"S": self.PREFIX + session.session_id},
            "user": {"S": session.user},
            "expiresAt": {"N": str(session.expires_at)},
        }
        if session.conversation_id:
            item["conversationId"] = {"S": session.conversation_id}
        with self.unavailable_as_store_error():
            self.client.put_item(TableName=self.table_name, Item=item)

    def delete(self, session_id: str) -> None:
        with self.unavailable_as_store_error():
            self.client.delete_item(TableName=self.table_name, Key={"pk": {"S": self.PREFIX + session_id}})
