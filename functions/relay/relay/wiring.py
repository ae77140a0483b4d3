"""Builds the relay's parts from its settings, once per container."""

from __future__ import annotations

from typing import TYPE_CHECKING

import urllib3

from .dify import DifyClient
from .keys import KeyProvider, SecretsManagerKeyProvider, StaticKeyProvider
from .limits import DynamoDBCounters, InMemoryCounters, RateLimiter
from .sessions import DynamoDBSessionStore, InMemorySessionStore, SessionStore
from .settings import Settings
from .turns import TurnService

if TYPE_CHECKING:
    from .repeats import Repeats


def key_provider(settings: Settings) -> KeyProvider:
    if settings.dify_api_key_secret:
        return SecretsManagerKeyProvider(settings.dify_api_key_secret, max_age=settings.key_cache_seconds)
    return StaticKeyProvider(settings.dify_api_key)


def session_store(settings: Settings) -> SessionStore:
    if settings.sessions_table:
        return DynamoDBSessionStore(settings.sessions_table)
    return InMemorySessionStore()


def rate_limiter(settings: Settings) -> RateLimiter:
    if settings.sessions_table:
        return RateLimiter(DynamoDBCounters(settings.sessions_table), settings.rate_budgets)
    return RateLimiter(InMemoryCounters(), settings.rate_budgets)


def turn_service(settings: Settings) -> TurnService:
    dify = DifyClient(
        settings.dify_api_url,
        key_provider(settings),
        http=urllib3.PoolManager(maxsize=4),
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        query_input=settings.query_input,
        answer_output=settings.answer_output,
    )
    return TurnService(
        dify,
        session_store(settings),
        session_ttl_seconds=settings.session_ttl_seconds,
        app_mode=settings.dify_app_mode,
        upstream_mode=settings.upstream_mode,
        default_inputs=settings.dify_inputs,
        limiter=rate_limiter(settings),
    )


def repeats(settings: Settings) -> Repeats:
    from . import repeats as module

    if settings.sessions_table:
        table = settings.sessions_table
        return module.Repeats(
            lambda: module.dynamodb_persistence(table), ttl_seconds=settings.idempotency_ttl_seconds
        )
    return module.Repeats(module.InMemoryPersistenceLayer, ttl_seconds=settings.idempotency_ttl_seconds)
