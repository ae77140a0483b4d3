"""Builds the relay's parts from its settings, once per container."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import urllib3

from .companion import CompanionService
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


@dataclass(frozen=True)
class Services:
    turns: TurnService
    companion: CompanionService


def services(settings: Settings) -> Services:
    """The turn and companion services, sharing one Dify client (one connection pool) and session store."""
    dify = DifyClient(
        settings.dify_api_url,
        key_provider(settings),
        http=urllib3.PoolManager(maxsize=4),
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        query_input=settings.query_input,
        answer_output=settings.answer_output,
    )
    sessions = session_store(settings)
    turns = TurnService(
        dify,
        sessions,
        session_ttl_seconds=settings.session_ttl_seconds,
        app_mode=settings.dify_app_mode,
        upstream_mode=settings.upstream_mode,
        default_inputs=settings.dify_inputs,
        limiter=rate_limiter(settings),
    )
    companion = CompanionService(
        dify,
        sessions,
        app_mode=settings.dify_app_mode,
        allowed_inputs=settings.allowed_inputs,
        config_ttl_seconds=settings.config_ttl_seconds,
    )
    return Services(turns, companion)


def repeats(settings: Settings) -> Repeats:
    from . import repeats as module

    if settings.sessions_table:
        table = settings.sessions_table
        return module.Repeats(
            lambda: module.dynamodb_persistence(table), ttl_seconds=settings.idempotency_ttl_seconds
        )
    return module.Repeats(module.InMemoryPersistenceLayer, ttl_seconds=settings.idempotency_ttl_seconds)
