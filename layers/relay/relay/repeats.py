"""Resent messages: a widget that sends the same message again with the same Idempotency-Key (a network
retry, a double click) gets the first answer again instead of a second Dify call.

Built on Powertools Idempotency: records live in the sessions table (or in memory for local runs), keyed by
a hash of the key, the session and the message, so one visitor's key cannot fetch another's answer.
"""

from __future__ import annotations

import queue
import re
import threading
from collections.abc import Callable, Iterator

from .errors import ErrorKind, RelayError

IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_.:-]{8,128}")


def in_memory_persistence():
    from .idempotency_memory import InMemoryPersistenceLayer

    return InMemoryPersistenceLayer()


def dynamodb_persistence(table_name: str, client=None):
    from aws_lambda_powertools.utilities.idempotency import DynamoDBPersistenceLayer

    return DynamoDBPersistenceLayer(
        table_name=table_name, key_attr="pk", expiry_attr="expiresAt", boto3_client=client
    )


def _produce(*, request: dict, produce: Callable[[], dict]) -> dict:
    return produce()


class _Left(Exception):
    """The visitor stopped reading a stream; its first answer is not recorded."""


class Repeats:
    def __init__(self, persistence: Callable[[], object], *, ttl_seconds: int) -> None:
        # Powertools Idempotency (and what it imports) loads on first use: most turns carry no key.
        self._persistence = persistence
        self._ttl = ttl_seconds
        self._config = None
        self._once = None

    def answer(self, key: str, scope: dict, produce: Callable[[], dict], lambda_context=None) -> dict:
        """The first answer for (key, scope), produced at most once while it is remembered."""
        if not IDEMPOTENCY_KEY.fullmatch(key):
            raise RelayError(
                ErrorKind.INVALID_REQUEST, "'Idempotency-Key' must be 8 to 128 letters, digits or '_.:-'."
            )
        from aws_lambda_powertools.utilities.idempotency import IdempotencyConfig, idempotent_function
        from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError

        if self._once is None:
            self._config = IdempotencyConfig(expires_after_seconds=self._ttl)
            self._once = idempotent_function(
                data_keyword_argument="request", persistence_store=self._persistence(), config=self._config
            )(_produce)
        if lambda_context is not None:
            self._config.register_lambda_context(lambda_context)
        try:
            return self._once(request={"idempotencyKey": key, **scope}, produce=produce)
        except IdempotencyAlreadyInProgressError:
            raise RelayError(
                ErrorKind.REQUEST_IN_PROGRESS, "This message is still being answered.", retry_after=1
            ) from None

    def stream(
        self,
        key: str,
        scope: dict,
        events: Callable[[], Iterator],
        replay: Callable[[dict], Iterator],
        lambda_context=None,
    ) -> Iterator:
        """A streamed answer for (key, scope): the first stream's events as they come, recorded by the data
        of its last event; a repeat gets `replay(recorded)`. A refusal (a repeat still in progress) raises
        on the first next(). A stream left unread is not recorded, so the next repeat asks again."""
        # The record is written around a call, so the stream is produced in a thread and handed over.
        handed: queue.Queue = queue.Queue()
        left = threading.Event()
        produced = []

        def produce() -> dict:
            last = None
            stream = events()
            try:
                for event in stream:
                    if left.is_set():
                        raise _Left()
                    handed.put(("event", event))
                    last = event
            finally:
                stream.close()
            produced.append(True)
            return last.data

        def run() -> None:
            try:
                recorded = self.answer(key, scope, produce, lambda_context)
                handed.put(("done", None if produced else recorded))
            except BaseException as error:  # handed to the reader, which raises it
                handed.put(("error", error))

        threading.Thread(target=run, name="stream-repeats", daemon=True).start()
        try:
            while True:
                kind, value = handed.get()
                if kind == "event":
                    yield value
                elif kind == "error":
                    if not isinstance(value, _Left):
                        raise value
                    return
                else:
                    if value is not None:
                        yield from replay(value)
                    return
        finally:
            left.set()
