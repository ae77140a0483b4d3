"""Builds the relay's parts from its settings, once per container."""

from __future__ import annotations

from dataclasses import dataclass

import urllib3

from .companion import CompanionService
from .dify import DifyClient
from .keys import KeyProvider, SecretsManagerKeyProvider, StaticKeyProvider
from .limits import DynamoDBCounters, InMemoryCounters, RateLimiter
from .media import MediaService
from .repeats import Repeats, dynamodb_persistence, in_memory_persistence
from .sessions import DynamoDBSessionStore, InMemorySessionStore, SessionStore
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


def key_provider(settings: Settings, aws: AwsClients) -> KeyProvider:
    if settings.dify_api_key_secret:
        secrets = aws("secretsmanager")
        return SecretsManagerKeyProvider(
            settings.dify_api_key_secret, max_age=settings.key_cache_seconds, client=secrets
        )
    return StaticKeyProvider(settings.dify_api_key)


def session_store(settings: Settings, aws: AwsClients) -> SessionStore:
    if settings.sessions_table:
        return DynamoDBSessionStore(settings.sessions_table, client=aws("dynamodb"))
    return InMemorySessionStore()


def rate_limiter(settings: Settings, aws: AwsClients) -> RateLimiter:
    if settings.sessions_table:
        counters = DynamoDBCounters(settings.sessions_table, client=aws("dynamodb"))
        return RateLimiter(counters, settings.rate_budgets)
    return RateLimiter(InMemoryCounters(), settings.rate_budgets)


def repeats(settings: Settings, aws: AwsClients) -> Repeats:
    ttl = settings.idempotency_ttl_seconds
    if settings.sessions_table:
        table, client = settings.sessions_table, aws("dynamodb")
        return Repeats(lambda: dynamodb_persistence(table, client), ttl_seconds=ttl)
    return Repeats(in_memory_persistence, ttl_seconds=ttl)


@dataclass(frozen=True)
class Services:
    turns: TurnService
    companion: CompanionService
    repeats: Repeats
    media: MediaService


def services(settings: Settings) -> Services:
    """The relay's services, sharing one Dify client (one connection pool), one session store and one AWS
    client per service."""
    aws = AwsClients()
    dify = DifyClient(
        settings.dify_api_url,
        key_provider(settings, aws),
        http=urllib3.PoolManager(maxsize=4),
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        query_input=settings.query_input,
        answer_output=settings.answer_output,
    )
    sessions, limiter = session_store(settings, aws), rate_limiter(settings, aws)
    turns = TurnService(
        dify,
        sessions,
        session_ttl_seconds=settings.session_ttl_seconds,
        app_mode=settings.dify_app_mode,
        upstream_mode=settings.upstream_mode,
        default_inputs=settings.dify_inputs,
        limiter=limiter,
    )
    companion = CompanionService(
        dify,
        sessions,
        app_mode=settings.dify_app_mode,
        allowed_inputs=settings.allowed_inputs,
        config_ttl_seconds=settings.config_ttl_seconds,
        max_upload_bytes=settings.max_upload_bytes,
        branding=settings.widget_branding,
    )
    media = MediaService(
        dify,
        sessions,
        companion.config,
        session_ttl_seconds=settings.session_ttl_seconds,
        max_upload_bytes=settings.max_upload_bytes,
        limiter=limiter,
    )
    return Services(turns, companion, repeats(settings, aws), media)
