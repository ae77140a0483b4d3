"""The relay's configuration, read once from the environment the template (or `make local`) sets."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass

from .apps import (  # noqa: F401  (BRANDING_OPTIONS and the modes are part of the settings' vocabulary)
    APP_MODES,
    BRANDING_OPTIONS,
    DEFAULT_APP,
    UPSTREAM_MODES,
    AppConfig,
    ConfigurationError,
    branding_of,
)
from .limits import Budgets
from .widget import DEFAULT_MAX_MESSAGE_CHARS

MAX_UPLOAD_BYTES = 4_500_000


@dataclass(frozen=True)
class Settings:
    default_app: AppConfig  # the app of /v1/... routes, described by the environment
    app_registry_path: str | None  # Parameter Store path of the other apps (AWS)
    app_secret_prefix: str | None  # the names of their key secrets
    apps: dict  # the other apps inline (APPS: local runs and tests)
    registry_cache_seconds: int
    sessions_table: str | None
    session_ttl_seconds: int
    max_message_chars: int
    max_body_bytes: int
    max_upload_bytes: int
    require_origin: bool
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

        budgets = Budgets(
            session_per_minute=number("RATE_LIMIT_SESSION_PER_MINUTE", Budgets.session_per_minute, 0),
            session_per_day=number("RATE_LIMIT_SESSION_PER_DAY", Budgets.session_per_day, 0),
            ip_per_minute=number("RATE_LIMIT_IP_PER_MINUTE", Budgets.ip_per_minute, 0),
            ip_per_day=number("RATE_LIMIT_IP_PER_DAY", Budgets.ip_per_day, 0),
        )
        default_app = AppConfig(
            app_id=DEFAULT_APP,
            dify_api_url=text("DIFY_API_URL", "https://api.dify.ai/v1").rstrip("/"),
            dify_app_mode=choice("DIFY_APP_MODE", APP_MODES),
            upstream_mode=choice("UPSTREAM_MODE", UPSTREAM_MODES),
            query_input=text("QUERY_INPUT", "query"),
            answer_output=text("ANSWER_OUTPUT", "answer"),
            dify_inputs=dify_inputs,
            allowed_inputs=frozenset(names("ALLOWED_INPUTS")),
            allowed_origins=tuple(origin.rstrip("/") for origin in names("ALLOWED_ORIGINS")),
            key_secret=secret,
            key=None if secret else key,
            rate_budgets=budgets,
            widget_branding=widget_branding,
        )
        try:
            apps = json.loads(text("APPS", "{}"))
        except ValueError:
            raise ConfigurationError("APPS must be a JSON object of app id -> entry") from None
        if not isinstance(apps, dict):
            raise ConfigurationError("APPS must be a JSON object of app id -> entry")
        registry_path = text("APP_REGISTRY_PATH")
        if registry_path and apps:
            raise ConfigurationError("set APP_REGISTRY_PATH or APPS, not both")
        if registry_path and not registry_path.startswith("/"):
            raise ConfigurationError(
                f"APP_REGISTRY_PATH must be a Parameter Store path (/...), got {registry_path!r}"
            )

        return cls(
            default_app=default_app,
            app_registry_path=registry_path,
            app_secret_prefix=text("APP_SECRET_PREFIX"),
            apps=apps,
            registry_cache_seconds=number("REGISTRY_CACHE_SECONDS", 60, 0),
            sessions_table=text("SESSIONS_TABLE"),
            session_ttl_seconds=number("SESSION_TTL_SECONDS", 7 * 24 * 3600, 300),
            max_message_chars=number("MAX_MESSAGE_CHARS", DEFAULT_MAX_MESSAGE_CHARS, 1),
            max_body_bytes=number("MAX_BODY_BYTES", 32_768, 256),
            max_upload_bytes=max_upload_bytes,
            require_origin=choice("REQUIRE_ORIGIN", ("false", "true")) == "true",
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
    return branding_of(branding, "WIDGET_BRANDING")
