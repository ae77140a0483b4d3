"""The relay's configuration, read once from the environment the template (or `make local`) sets."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

from .limits import Budgets
from .widget import DEFAULT_MAX_MESSAGE_CHARS

APP_MODES = ("auto", "chat", "chatflow", "agent", "completion", "workflow")
UPSTREAM_MODES = ("auto", "blocking", "streaming")
MAX_UPLOAD_BYTES = 4_500_000
# The widget options a deployment may set for every page (WIDGET_BRANDING); a page's own data-* win. Not the
# consent text: the widget needs it before it may ask the relay anything.
BRANDING_OPTIONS = (
    "title",
    "color",
    "textColor",
    "accent",
    "theme",
    "position",
    "launcherLabel",
    "launcherIcon",
    "avatar",
    "greeting",
    "placeholder",
    "font",
)


class ConfigurationError(ValueError):
    """The environment does not describe a working relay."""


@dataclass(frozen=True)
class Settings:
    dify_api_url: str
    dify_app_mode: str
    upstream_mode: str
    query_input: str
    answer_output: str
    dify_inputs: dict
    widget_branding: dict
    allowed_inputs: frozenset[str]
    dify_api_key_secret: str | None
    dify_api_key: str | None
    allowed_origins: tuple[str, ...]
    sessions_table: str | None
    session_ttl_seconds: int
    max_message_chars: int
    max_body_bytes: int
    max_upload_bytes: int
    require_origin: bool
    rate_budgets: Budgets
    key_cache_seconds: int
    connect_timeout: float
    read_timeout: float
    gateway_timeout_ms: int
    idempotency_ttl_seconds: int
    config_ttl_seconds: int
    deadline_margin_ms: int
    stream_max_seconds: int

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

        def choice(name: str, choices: tuple[str, ...]) -> str:
            value = text(name, choices[0]).lower()
            if value not in choices:
                raise ConfigurationError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
            return value

        def names(name: str) -> list[str]:
            return [part.strip() for part in (text(name) or "").split(",") if part.strip()]

        try:
            dify_inputs = json.loads(text("DIFY_INPUTS", "{}"))
        except ValueError:
            raise ConfigurationError("DIFY_INPUTS must be a JSON object") from None
        if not isinstance(dify_inputs, dict):
            raise ConfigurationError("DIFY_INPUTS must be a JSON object")
        widget_branding = _branding(text("WIDGET_BRANDING", "{}"))
        secret, key = text("DIFY_API_KEY_SECRET"), text("DIFY_API_KEY")
        if not secret and not key:
            raise ConfigurationError(
                "set DIFY_API_KEY_SECRET (a Secrets Manager secret) or, locally, DIFY_API_KEY"
            )

        # A streamed turn may last as long as Dify writes, within API Gateway's 15-minute stream.
        stream_max_seconds = number("STREAM_MAX_SECONDS", 300, 1)
        if stream_max_seconds > 900:
            raise ConfigurationError(f"STREAM_MAX_SECONDS must be at most 900, got {stream_max_seconds}")

        # An upload reaches Lambda base64-encoded inside a request of at most 6 MB.
        max_upload_bytes = number("MAX_UPLOAD_BYTES", 4 * 1024 * 1024, 1024)
        if max_upload_bytes > MAX_UPLOAD_BYTES:
            raise ConfigurationError(
                f"MAX_UPLOAD_BYTES must be at most {MAX_UPLOAD_BYTES} (Lambda's 6 MB request holds it "
                f"base64-encoded), got {max_upload_bytes}"
            )

        return cls(
            dify_api_url=text("DIFY_API_URL", "https://api.dify.ai/v1").rstrip("/"),
            dify_app_mode=choice("DIFY_APP_MODE", APP_MODES),
            upstream_mode=choice("UPSTREAM_MODE", UPSTREAM_MODES),
            query_input=text("QUERY_INPUT", "query"),
            answer_output=text("ANSWER_OUTPUT", "answer"),
            dify_inputs=dify_inputs,
            widget_branding=widget_branding,
            allowed_inputs=frozenset(names("ALLOWED_INPUTS")),
            dify_api_key_secret=secret,
            dify_api_key=None if secret else key,
            allowed_origins=tuple(origin.rstrip("/") for origin in names("ALLOWED_ORIGINS")),
            sessions_table=text("SESSIONS_TABLE"),
            session_ttl_seconds=number("SESSION_TTL_SECONDS", 7 * 24 * 3600, 300),
            max_message_chars=number("MAX_MESSAGE_CHARS", DEFAULT_MAX_MESSAGE_CHARS, 1),
            max_body_bytes=number("MAX_BODY_BYTES", 32_768, 256),
            max_upload_bytes=max_upload_bytes,
            require_origin=choice("REQUIRE_ORIGIN", ("false", "true")) == "true",
            rate_budgets=Budgets(
                session_per_minute=number("RATE_LIMIT_SESSION_PER_MINUTE", Budgets.session_per_minute, 0),
                session_per_day=number("RATE_LIMIT_SESSION_PER_DAY", Budgets.session_per_day, 0),
                ip_per_minute=number("RATE_LIMIT_IP_PER_MINUTE", Budgets.ip_per_minute, 0),
                ip_per_day=number("RATE_LIMIT_IP_PER_DAY", Budgets.ip_per_day, 0),
            ),
            key_cache_seconds=number("KEY_CACHE_SECONDS", 300, 0),
            connect_timeout=number("DIFY_CONNECT_TIMEOUT", 3.05, 0.1, float),
            read_timeout=number("DIFY_READ_TIMEOUT", 25.0, 0.1, float),
            gateway_timeout_ms=number("GATEWAY_TIMEOUT_MS", 29_000, 1_000),
            idempotency_ttl_seconds=number("IDEMPOTENCY_TTL_SECONDS", 3_600, 60),
            config_ttl_seconds=number("CONFIG_TTL_SECONDS", 300, 0),
            deadline_margin_ms=number("DEADLINE_MARGIN_MS", 1_500, 0),
            stream_max_seconds=stream_max_seconds,
        )


def _branding(raw: str) -> dict:
    try:
        branding = json.loads(raw)
    except ValueError:
        raise ConfigurationError("WIDGET_BRANDING must be a JSON object") from None
    if not isinstance(branding, dict):
        raise ConfigurationError("WIDGET_BRANDING must be a JSON object")
    for name, value in branding.items():
        if name not in BRANDING_OPTIONS:
            raise ConfigurationError(
                f"WIDGET_BRANDING has {name!r}, which is not one of {', '.join(BRANDING_OPTIONS)}"
            )
        if not isinstance(value, str) or len(value) > 500:
            raise ConfigurationError(f"WIDGET_BRANDING.{name} must be a string of at most 500 characters")
    return branding
