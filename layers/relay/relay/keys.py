"""Where the Dify app key comes from. The key is never logged, returned or put in an exception."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Protocol

from aws_lambda_powertools import Logger

from . import telemetry
from .errors import ErrorKind, RelayError

logger = Logger(child=True)

# The value template.yaml puts in a secret it creates, until the site owner stores the real key.
PLACEHOLDER = "REPLACE_WITH_YOUR_DIFY_APP_API_KEY"


class KeyProvider(Protocol):
    def get(self, *, refresh: bool = False) -> str:
        """The current key; `refresh` skips any cache (Dify refused the cached one)."""


def parse_secret(value: str | bytes | None) -> str | None:
    """A secret holds the bare key or JSON `{"apiKey": "..."}`."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = (value or "").strip()
    if text.startswith("{"):
        try:
            text = str(json.loads(text).get("apiKey") or "").strip()
        except (ValueError, AttributeError):
            return None
    return text if text and text != PLACEHOLDER else None


class StaticKeyProvider:
    """A key given directly (local runs)."""

    def __init__(self, key: str) -> None:
        self._key = key

    def get(self, *, refresh: bool = False) -> str:
        return self._key


class SecretsManagerKeyProvider:
    """Reads the key from Secrets Manager, cached for `max_age` seconds across warm invocations.

    A botocore client, not boto3 or Powertools Parameters: both would import boto3 (and s3transfer) into a
    cold start for one call."""

    def __init__(
        self, secret_id: str, *, max_age: int, client=None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._secret_id = secret_id
        self._max_age = max_age
        self._client = client
        self._clock = clock
        self._raw: str | bytes | None = None
        self._fetched_at: float | None = None
        self._last_good: str | None = None

    def get(self, *, refresh: bool = False) -> str:
        now = self._clock()
        if refresh or self._fetched_at is None or now - self._fetched_at >= self._max_age:
            from botocore.exceptions import BotoCoreError, ClientError

            try:
                self._raw = self._fetch()
            except (BotoCoreError, ClientError) as error:
                return self._fallback(error)
            self._fetched_at = now
        key = parse_secret(self._raw)
        if key is None:
            raise RelayError(ErrorKind.UPSTREAM_REJECTED, "The assistant is not configured yet.")
        self._last_good = key
        return key

    def _fetch(self) -> str | bytes | None:
        if self._client is None:
            import botocore.session

            self._client = botocore.session.get_session().create_client("secretsmanager")
        secret = self._client.get_secret_value(SecretId=self._secret_id)
        return secret.get("SecretString", secret.get("SecretBinary"))

    def _fallback(self, error: Exception) -> str:
        """Secrets Manager throttled or unreachable: keep answering with the last good key, if any."""
        reason = type(error).__name__
        telemetry.count("KeyFetchFailures")
        if self._last_good is not None:
            logger.warning("Secrets Manager unavailable; using the last good key", extra={"reason": reason})
            return self._last_good
        logger.error("Secrets Manager unavailable and no key yet", extra={"reason": reason})
        raise RelayError(
            ErrorKind.RELAY_UNAVAILABLE, "The assistant is briefly unavailable. Please try again."
        )
