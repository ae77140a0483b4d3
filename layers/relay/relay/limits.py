"""Per-session and per-client-IP message budgets, per minute and per day, in fixed windows.

A principal (a session, a client IP) has one item per day holding its day counter and its current minute's
counter, both spent in one conditional update: a turn writes once per principal, and two containers can never
both spend the last unit of a budget.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from dataclasses import dataclass
from typing import Protocol

from aws_lambda_powertools import Logger

from . import telemetry
from .dynamodb import DynamoDBTable, StoreUnavailable
from .errors import ErrorKind, RelayError

logger = Logger(child=True)

MINUTE, DAY = 60, 86_400
DAY_COUNTER = "day"
FORGET_MINUTES = 10


class CounterStore(Protocol):
    def spend(
        self, key: str, limits: dict[str, int], expires_at: int, forget: tuple[str, ...] = ()
    ) -> str | None:
        """Adds one to each counter of item `key` unless one has reached its limit, all or nothing; drops
        the counters named in `forget`. None when spent, else the name of a counter at its limit."""


def _full(counts: dict[str, int], limits: dict[str, int]) -> str | None:
    return next((name for name, limit in limits.items() if counts.get(name, 0) >= limit), None)


class InMemoryCounters:
    """Counters for local runs and tests; one process only."""

    PRUNE_AT = 4096

    def __init__(self, clock=time.time) -> None:
        self._items: dict[str, tuple[dict[str, int], int]] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def spend(
        self, key: str, limits: dict[str, int], expires_at: int, forget: tuple[str, ...] = ()
    ) -> str | None:
        with self._lock:
            if len(self._items) >= self.PRUNE_AT:
                now = self._clock()
                self._items = {k: v for k, v in self._items.items() if v[1] > now}
            counts, expires = self._items.get(key, ({}, expires_at))
            full = _full(counts, limits)
            if full is not None:
                return full
            counts = {name: n for name, n in counts.items() if name not in forget}
            for name in limits:
                counts[name] = counts.get(name, 0) + 1
            self._items[key] = (counts, expires)
            return None


class DynamoDBCounters(DynamoDBTable):
    """Counters as attributes of one item per principal and day in the sessions table, spent together in one
    conditional update; the table's TTL removes the item after its day."""

    def spend(
        self, key: str, limits: dict[str, int], expires_at: int, forget: tuple[str, ...] = ()
    ) -> str | None:
        names, values = {}, {":one": {"N": "1"}, ":zero": {"N": "0"}, ":expires": {"N": str(expires_at)}}
        sets, conditions = [], []
        for i, (name, limit) in enumerate(limits.items()):
            names[f"#c{i}"], values[f":l{i}"] = name, {"N": str(limit)}
            sets.append(f"#c{i} = if_not_exists(#c{i}, :zero) + :one")
            conditions.append(f"(attribute_not_exists(#c{i}) OR #c{i} < :l{i})")
        update = "SET " + ", ".join([*sets, "expiresAt = if_not_exists(expiresAt, :expires)"])
        stale = [name for name in forget if name not in limits]
        if stale:
            names |= {f"#f{i}": name for i, name in enumerate(stale)}
            update += " REMOVE " + ", ".join(f"#f{i}" for i in range(len(stale)))
        with self.unavailable_as_store_error():
            try:
                self.client.update_item(
                    TableName=self.table_name,
                    Key={"pk": {"S": key}},
                    UpdateExpression=update,
                    ConditionExpression=" AND ".join(conditions),
                    ExpressionAttributeNames=names,
                    ExpressionAttributeValues=values,
                    ReturnValuesOnConditionCheckFailure="ALL_OLD",
                )
            except self.client.exceptions.ConditionalCheckFailedException as refused:
                item = refused.response.get("Item") or {}
                counts = {name: int(item[name]["N"]) for name in limits if "N" in item.get(name, {})}
                return _full(counts, limits) or next(iter(limits))
        return None


@dataclass(frozen=True)
class Budgets:
    """Messages allowed per window; 0 switches that budget off."""

    session_per_minute: int = 20
    session_per_day: int = 300
    ip_per_minute: int = 60
    ip_per_day: int = 2000


class RateLimiter:
    def __init__(self, counters: CounterStore, budgets: Budgets, *, app_id: str | None = None) -> None:
        self._counters = counters
        self._budgets = budgets
        # Each app spends its own budgets; the default app's counters keep the keys from before apps.
        self._prefix = "rate#" if app_id in (None, "default") else f"rate@{app_id}#"

    def spend(self, *, session_id: str, client_ip: str | None, now: float) -> None:
        """Spends one message from each budget of the session and the IP, or refuses with 429: one counter
        write per principal, both of its windows in it. While the counters are down nothing is refused:
        gateway throttling and reserved concurrency still cap spending."""
        try:
            self._spend(session_id, client_ip, now)
        except StoreUnavailable as error:
            telemetry.degraded("rate limits not checked", error)

    def _spend(self, session_id: str, client_ip: str | None, now: float) -> None:
        b = self._budgets
        # Client IPs are kept only as hashes: the counters need identity, not the address.
        ip = hashlib.sha256(client_ip.encode()).hexdigest()[:32] if client_ip else None
        minute, day = int(now // MINUTE), int(now // DAY) * DAY
        for scope, who, per_minute, per_day in (
            ("session", session_id, b.session_per_minute, b.session_per_day),
            ("ip", ip, b.ip_per_minute, b.ip_per_day),
        ):
            limits = {DAY_COUNTER: per_day} if per_day else {}
            if per_minute:
                limits[f"m{minute}"] = per_minute
            if not who or not limits:
                continue
            # Earlier minutes' counters are dropped as the principal returns; what a long pause leaves
            # behind goes with the day's item.
            forget = tuple(f"m{minute - back}" for back in range(1, FORGET_MINUTES + 1)) if per_minute else ()
            key = f"{self._prefix}{scope}#{who}#{day}"
            full = self._counters.spend(key, limits, expires_at=day + DAY + MINUTE, forget=forget)
            if full is not None:
                window_end = day + DAY if full == DAY_COUNTER else (minute + 1) * MINUTE
                retry_after = max(1, math.ceil(window_end - now))
                window = DAY if full == DAY_COUNTER else MINUTE
                logger.info(
                    "rate limited", extra={"scope": scope, "window_s": window, "retry_after_s": retry_after}
                )
                raise RelayError(
                    ErrorKind.RATE_LIMITED,
                    "Too many messages. Please wait a moment before sending another.",
                    retry_after=retry_after,
                )
