"""Builds the relay's parts from its settings, once per container."""

from __future__ import annotations

from dataclasses import dataclass

import urllib3

from .apps import AppConfig, AppRegistry, ParameterStoreApps, parse_app
from .companion import CompanionService
from .dify import DifyClient
from .keys import KeyProvider, SecretsManagerKeyProvider, StaticKeyProvider
from .limits import DynamoDBCounters, InMemoryCounters, RateLimiter
from .media import MediaService
from .origins import OriginPolicy
from .repeats import Repeats, dynamodb_persistence, in_memory_persistence
from .sessions import DynamoDBSessionStore, InMemorySessionStore
from .settings import Settings
from .turns import TurnService


class AwsClients:
    """One botocore session, one client per service, created on first use and shared by every store (botocore,
    not boto3: the relay uses low-level clients only, and boto3 would add its own imports to a cold start)."""

    def __init__(self) -> None:
        self._session = None
        self._clients: dict[str, object] = {}

    def __call__(self, service: str):
        if service not in self._clients:
            if self._session is None:
                import botocore.session

                self._session = botocore.session.get_session()
            self._clients[service] = self._session.create_client(service)
        return self._clients[service]


def key_provider(app: AppConfig, settings: Settings, aws: AwsClients) -> KeyProvider:
    if app.key_secret:
        secrets = aws("secretsmanager")
        return SecretsManagerKeyProvider(app.key_secret, max_age=settings.key_cache_seconds, client=secrets)
    return StaticKeyProvider(app.key)


def app_registry(settings: Settings, aws: AwsClients) -> AppRegistry:
    if settings.app_registry_path:
        source = ParameterStoreApps(settings.app_registry_path, lambda: aws("ssm"))
        inline = False
    else:
        source, inline = (lambda: settings.apps) if settings.apps else None, True

    def parse(app_id: str, entry: object) -> AppConfig:
        return parse_app(
            app_id,
            entry,
            budgets=settings.default_app.rate_budgets,
            secret_prefix=settings.app_secret_prefix,
            allow_inline_key=inline,
        )

    return AppRegistry(settings.default_app, source, parse=parse, max_age=settings.registry_cache_seconds)


def repeats(settings: Settings, aws: AwsClients) -> Repeats:
    ttl = settings.idempotency_ttl_seconds
    if settings.sessions_table:
        table, client = settings.sessions_table, aws("dynamodb")
        return Repeats(lambda: dynamodb_persistence(table, client), ttl_seconds=ttl)
    return Repeats(in_memory_persistence, ttl_seconds=ttl)


@dataclass(frozen=True)
class Services:
    app: AppConfig
    origins: OriginPolicy
    turns: TurnService
    companion: CompanionService
    repeats: Repeats
    media: MediaService


class Relay:
    """Each app's services: the default app's built with the container, another's on its first request and
    again when its registry entry changes. What the apps share: one connection pool, one AWS client per
    service, one idempotency store; sessions, budgets and resent messages are kept apart by app."""

    def __init__(self, settings: Settings, *, registry: AppRegistry | None = None) -> None:
        self.settings = settings
        self._aws = AwsClients()
        self.registry = registry or app_registry(settings, self._aws)
        self._http = urllib3.PoolManager(maxsize=4)
        self._repeats = repeats(settings, self._aws)
        self._counters = (
            DynamoDBCounters(settings.sessions_table, client=self._aws("dynamodb"))
            if settings.sessions_table
            else InMemoryCounters()
        )
        self._memory: dict[str, InMemorySessionStore] = {}  # outlives the services rebuilt on it
        self._built: dict[str, Services] = {}
        self.default = self.services()

    def services(self, app_id: str | None = None) -> Services:
        """The services of the app of that id; None: the default app."""
        app = self.registry.app(app_id)
        built = self._built.get(app.app_id)
        if built is None or built.app != app:
            built = self._built[app.app_id] = self._build(app)
        return built

    def _build(self, app: AppConfig) -> Services:
        settings = self.settings
        dify = DifyClient(
            app.dify_api_url,
            key_provider(app, settings, self._aws),
            http=self._http,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            query_input=app.query_input,
            answer_output=app.answer_output,
        )
        if settings.sessions_table:
            sessions = DynamoDBSessionStore(
                settings.sessions_table, client=self._aws("dynamodb"), app_id=app.app_id
            )
        else:
            sessions = self._memory.setdefault(app.app_id, InMemorySessionStore())
        limiter = RateLimiter(self._counters, app.rate_budgets, app_id=app.app_id)
        turns = TurnService(
            dify,
            sessions,
            session_ttl_seconds=settings.session_ttl_seconds,
            app_mode=app.dify_app_mode,
            upstream_mode=app.upstream_mode,
            default_inputs=app.dify_inputs,
            limiter=limiter,
        )
        companion = CompanionService(
            dify,
            sessions,
            app_mode=app.dify_app_mode,
            allowed_inputs=app.allowed_inputs,
            config_ttl_seconds=settings.config_ttl_seconds,
            max_upload_bytes=settings.max_upload_bytes,
            branding=app.widget_branding,
        )
        media = MediaService(
            dify,
            sessions,
            companion.config,
            session_ttl_seconds=settings.session_ttl_seconds,
            max_upload_bytes=settings.max_upload_bytes,
            limiter=limiter,
        )
        origins = OriginPolicy(app.allowed_origins, require_origin=settings.require_origin)
        return Services(app, origins, turns, companion, self._repeats, media)
