"""The relay's configuration, read once from the environment the template (or `make local`) sets."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

APP_MODES = ("auto", "chat", "chatflow", "agent", "completion", "workflow")


class ConfigurationError(ValueError):
    """The environment does not describe a working relay."""


@dataclass(frozen=True)
class Settings:
    dify_api_url: str
    dify_app_mode: str
    dify_api_key_secret: str | None
    dify_api_key: str | None
    allowed_origins: tuple[str, ...]
    sessions_table: str | None
    session_ttl_seconds: int
    max_message_chars: int
    key_cache_seconds: int
    connect_timeout: float
    read_timeout: float

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        def text(name: str, default: str | None = None) -> str | None:
            value = env.get(name, "").strip()
            return value or default

        def number(name: str, default: float, minimum: float, kind: type = int):
            raw = text(name)
            if raw is None:
                return kind(default)
            try:
                value = kind(raw)
            except ValueError:
                raise ConfigurationError(f"{name} must be a number, got {raw!r}") from None
            if value < minimum:
                raise ConfigurationError(f"{name} must be at least {minimum}, got {value}")
            return value

        mode = text("DIFY_APP_MODE", "auto").lower()
        if mode not in APP_MODES:
            raise ConfigurationError(f"DIFY_APP_MODE must be one of {', '.join(APP_MODES)}, got {mode!r}")
        secret, key = text("DIFY_API_KEY_SECRET"), text("DIFY_API_KEY")
        if not secret and not key:
            raise ConfigurationError(
                "set DIFY_API_KEY_SECRET (a Secrets Manager secret) or, locally, DIFY_API_KEY"
            )
        origins = tuple(
            o.strip().rstrip("/") for o in (text("ALLOWED_ORIGINS") or "").split(",") if o.strip()
        )

        return cls(
            dify_api_url=text("DIFY_API_URL", "https://api.dify.ai/v1").rstrip("/"),
            dify_app_mode=mode,
            dify_api_key_secret=secret,
            dify_api_key=None if secret else key,
            allowed_origins=origins,
            sessions_table=text("SESSIONS_TABLE"),
            session_ttl_seconds=number("SESSION_TTL_SECONDS", 7 * 24 * 3600, 300),
            max_message_chars=number("MAX_MESSAGE_CHARS", 4000, 1),
            key_cache_seconds=number("KEY_CACHE_SECONDS", 300, 0),
            connect_timeout=number("DIFY_CONNECT_TIMEOUT", 3.05, 0.1, float),
            read_timeout=number("DIFY_READ_TIMEOUT", 25.0, 0.1, float),
        )
