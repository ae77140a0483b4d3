"""Where the Dify app key comes from. The key is never logged, returned or put in an exception."""

from __future__ import annotations

import json
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
    """Reads the key from Secrets Manager through Powertools, cached across warm invocations."""

    def __init__(self, secret_id: str, *, max_age: int, boto3_client=None) -> None:
        self._secret_id = secret_id
        self._max_age = max_age
        self._boto3_client = boto3_client
        self._provider = None
        self._last_good: str | None = None

    def get(self, *, refresh: bool = False) -> str:
        from aws_lambda_powertools.utilities.parameters import GetParameterError, SecretsProvider

        if self._provider is None:
            self._provider = SecretsProvider(boto3_client=self._boto3_client)
        try:
            raw = self._provider.get(self._secret_id, max_age=self._max_age, force_fetch=refresh)
        except GetParameterError as error:
            return self._fallback(error)
        key = parse_secret(raw)
        if key is None:
            raise RelayError(ErrorKind.UPSTREAM_REJECTED, "The assistant is not configured yet.")
        self._last_good = key
        return key

    def _fallback(self, error: Exception) -> str:
        """Secrets Manager throttled or unreachable: keep answering with the last good key, if any."""
        reason = type(error.__context__ or error).__name__
        telemetry.count("KeyFetchFailures")
        if self._last_good is not None:
            logger.warning("Secrets Manager unavailable; using the last good key", extra={"reason": reason})
            return self._last_good
        logger.error("Secrets Manager unavailable and no key yet", extra={"reason": reason})
        raise RelayError(
            ErrorKind.RELAY_UNAVAILABLE, "The assistant is briefly unavailable. Please try again."
        )
