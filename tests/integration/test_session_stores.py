"""Both session stores keep the same promises: what is saved is loaded until it expires."""

import boto3
import pytest
from moto import mock_aws

from relay.sessions import DynamoDBSessionStore, InMemorySessionStore, Session
from tests.support import create_sessions_table


@pytest.fixture(params=["memory", "dynamodb"])
def store(request):
    if request.param == "memory":
        yield InMemorySessionStore()
        return
    with mock_aws():
        client = boto3.client("dynamodb")
        create_sessions_table(client, "sessions")
        yield DynamoDBSessionStore("sessions", client=client)


def test_saved_sessions_load_until_they_expire(store):
    session = Session("session-0001", "visitor", "0b6f5e6e-8a53-4e6b-9f1e-2f4a3b1c9d7e", expires_at=2_000)
    store.save(session)
    assert store.load("session-0001", now=1_999) == session
    assert store.load("session-0001", now=2_000) is None
    assert store.load("session-0002", now=1_000) is None


def test_a_session_without_conversation_round_trips(store):
    session = Session("session-0003", "visitor", None, expires_at=2_000)
    store.save(session)
    assert store.load("session-0003", now=1_000) == session


def test_saving_again_replaces_the_conversation(store):
    store.save(Session("session-0004", "visitor", "0b6f5e6e-8a53-4e6b-9f1e-2f4a3b1c9d7e", expires_at=2_000))
    store.save(Session("session-0004", "visitor", None, expires_at=3_000))
    assert store.load("session-0004", now=2_500) == Session("session-0004", "visitor", None, 3_000)
