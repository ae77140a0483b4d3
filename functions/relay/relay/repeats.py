"""Resent messages: a widget that sends the same message again with the same Idempotency-Key (a network
retry, a double click) gets the first answer again instead of a second Dify call.

Built on Powertools Idempotency: records live in the sessions table (or in memory for local runs), keyed by
a hash of the key, the session and the message, so one visitor's key cannot fetch another's answer.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable

from aws_lambda_powertools.utilities.idempotency import (
    BasePersistenceLayer,
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyItemAlreadyExistsError,
    IdempotencyItemNotFoundError,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord

from .errors import ErrorKind, RelayError

IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9_.:-]{8,128}")


class InMemoryPersistenceLayer(BasePersistenceLayer):
    """Idempotency records for local runs and tests; one process only."""

    def __init__(self) -> None:
        super().__init__()
        self._records: dict[str, DataRecord] = {}
        self._lock = threading.Lock()

    def _get_record(self, idempotency_key) -> DataRecord:
        with self._lock:
            if idempotency_key not in self._records:
                raise IdempotencyItemNotFoundError
            return self._records[idempotency_key]

    def _put_record(self, data_record: DataRecord) -> None:
        with self._lock:
            old = self._records.get(data_record.idempotency_key)
            if old is not None and not old.is_expired:
                raise IdempotencyItemAlreadyExistsError(old_data_record=old)
            self._records[data_record.idempotency_key] = data_record

    def _update_record(self, data_record: DataRecord) -> None:
        with self._lock:
            self._records[data_record.idempotency_key] = data_record

    def _delete_record(self, data_record: DataRecord) -> None:
        with self._lock:
            self._records.pop(data_record.idempotency_key, None)


def dynamodb_persistence(table_name: str) -> DynamoDBPersistenceLayer:
    return DynamoDBPersistenceLayer(table_name=table_name, key_attr="pk", expiry_attr="expiresAt")


def _produce(*, request: dict, produce: Callable[[], dict]) -> dict:
    return produce()


class Repeats:
    def __init__(self, persistence: Callable[[], BasePersistenceLayer], *, ttl_seconds: int) -> None:
        self._persistence = persistence  # built on first use: most turns carry no Idempotency-Key
        self._config = IdempotencyConfig(expires_after_seconds=ttl_seconds)
        self._once = None

    def answer(self, key: str, scope: dict, produce: Callable[[], dict], lambda_context=None) -> dict:
        """The first answer for (key, scope), produced at most once while it is remembered."""
        if not IDEMPOTENCY_KEY.fullmatch(key):
            raise RelayError(
                ErrorKind.INVALID_REQUEST, "'Idempotency-Key' must be 8 to 128 letters, digits or '_.:-'."
            )
        if self._once is None:
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
