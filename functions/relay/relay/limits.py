"""Per-session and per-client-IP message budgets, per minute and per day, in fixed windows.

Each window is one counter, spent atomically (a conditional increment), so two containers can never both spend
the last unit of a budget.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from aws_lambda_powertools import Logger

from .dynamodb import DynamoDBTable
from .errors import ErrorKind, RelayError

logger = Logger(child=True)

MINUTE, DAY = 60, 86_400


class CounterStore(Protocol):
    def spend(self, key: str, limit: int, expires_at: int) -> bool:
        """Adds one to the counter unless it has reached `limit`; whether the unit was spent."""


class InMemoryCounters:
    """Counters for local runs and tests; one process only."""

    PRUNE_AT = 4096

    def __init__(self, clock=time.time) -> None:
        self._counts: dict[str, tuple[int, int]] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def spend(self, key: str, limit: int, expires_at: int) -> bool:
        with self._lock:
            if len(self._counts) >= self.PRUNE_AT:
                now = self._clock()
                self._counts = {k: v for k, v in self._counts.items() if v[1] > now}
            count, _ = self._counts.get(key, (0, expires_at))
            if count >= limit:
                return False
            self._counts[key] = (count + 1, expires_at)
            return True


class DynamoDBCounters(DynamoDBTable):
    """Counters as items of the sessions table; its TTL removes ended windows."""

    def spend(self, key: str, limit: int, expires_at: int) -> bool:
        with self.unavailable_as_store_error():
            try:
                self.client.update_item(
                    TableName=self.table_name,
                    Key={"pk": {"S": key}},
                    UpdateExpression="ADD hits :one SET expiresAt = if_not_exists(expiresAt, :expires)",
                    ConditionExpression="attribute_not_exists(hits) OR hits < :limit",
                    ExpressionAttributeValues={
                        ":one": {"N": "1"},
                        ":limit": {"N": str(limit)},
                        ":expires": {"N": str(expires_at)},
                    },
                )
            except self.client.exceptions.ConditionalCheckFailedException:
                return False
        return True


@dataclass(frozen=True)
class Budgets:
    """Messages allowed per window; 0 switches that budget off."""

    session_per_minute: int = 20
    session_per_day: int = 300
    ip_per_minute: int = 60
    ip_per_day: int = 2000


class RateLimiter:
    def __init__(self, counters: CounterStore, budgets: Budgets) -> None:
        self._counters = counters
        self._budgets = budgets

    def spend(self, *, session_id: str, client_ip: str | None, now: float) -> None:
        """Spends one message from each budget of the session and the IP, or refuses with 429."""
        b = self._budgets
        # Client IPs are kept only as hashes: the counters need identity, not the address.
        ip = hashlib.sha256(client_ip.encode()).hexdigest()[:32] if client_ip else None
        checks = [
            ("session", session_id, MINUTE, b.session_per_minute),
            ("session", session_id, DAY, b.session_per_day),
            ("ip", ip, MINUTE, b.ip_per_minute),
            ("ip", ip, DAY, b.ip_per_day),
        ]
        for scope, who, window, limit in checks:
            if not limit or not who:
                continue
            start = int(now // window) * window
            key = f"rate#{scope}#{who}#{window}#{start}"
            if not self._counters.spend(key, limit, expires_at=start + window + MINUTE):
                retry_after = max(1, math.ceil(start + window - now))
                logger.info(
                    "rate limited", extra={"scope": scope, "window_s": window, "retry_after_s": retry_after}
                )
                raise RelayError(
                    ErrorKind.RATE_LIMITED,
                    "Too many messages. Please wait a moment before sending another.",
                    retry_after=retry_after,
                )
