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


IMAGE = "5d3c1f2a-7b6e-4c8d-9a0b-1e2f3a4b5c6d"


def test_an_uploaded_image_starts_the_session_and_belongs_to_it(store):
    new = Session("session-0010", "session-0010", None, expires_at=0)
    assert store.add_image(new, IMAGE, expires_at=2_000)
    loaded = store.load("session-0010", now=1_000)
    assert (loaded.user, loaded.conversation_id, loaded.expires_at) == ("session-0010", None, 2_000)
    assert loaded.image_ids == {IMAGE}
    assert store.load("session-0011", now=1_000) is None


def test_a_turn_saving_the_session_keeps_its_images(store):
    session = Session("session-0012", "visitor", None, expires_at=0)
    store.add_image(session, IMAGE, expires_at=2_000)
    # A turn saves what it loaded before another image arrived: the newer image stays.
    loaded = store.load("session-0012", now=1_000)
    store.add_image(loaded, "6e4d2a3b-8c7f-4d9e-8b1c-2f3a4b5c6d7e", expires_at=2_000)
    store.save(Session("session-0012", "visitor", "0b6f5e6e-8a53-4e6b-9f1e-2f4a3b1c9d7e", expires_at=3_000))
    after = store.load("session-0012", now=2_500)
    assert after.conversation_id == "0b6f5e6e-8a53-4e6b-9f1e-2f4a3b1c9d7e"
    assert after.image_ids == {IMAGE, "6e4d2a3b-8c7f-4d9e-8b1c-2f3a4b5c6d7e"}


def test_a_session_holds_at_most_max_images(store):
    from relay.sessions import MAX_IMAGES

    ids = [f"00000000-0000-4000-8000-{n:012d}" for n in range(MAX_IMAGES + 1)]
    assert store.add_image(Session("session-0013", "visitor", None, expires_at=0), ids[0], expires_at=2_000)
    session = store.load("session-0013", now=1_000)
    assert all(store.add_image(session, image, expires_at=2_000) for image in ids[1:MAX_IMAGES])
    assert not store.add_image(session, ids[-1], expires_at=2_000)
    assert store.load("session-0013", now=1_000).image_ids == set(ids[:MAX_IMAGES])


def test_a_new_session_under_an_expired_ones_id_starts_clean(store):
    # DynamoDB's TTL removes expired items up to days late: what they held must not come back.
    old = Session("session-0014", "site-user-42", "0b6f5e6e-8a53-4e6b-9f1e-2f4a3b1c9d7e", expires_at=2_000)
    store.save(old, new=True)
    store.add_image(store.load("session-0014", now=1_000), IMAGE, expires_at=2_000)
    assert store.load("session-0014", now=3_000) is None
    assert store.add_image(
        Session("session-0014", "session-0014", None, expires_at=0), IMAGE, expires_at=4_000
    )
    revived = store.load("session-0014", now=3_100)
    assert (revived.user, revived.conversation_id, revived.image_ids) == ("session-0014", None, {IMAGE})
    store.save(Session("session-0014", "visitor", None, expires_at=5_000), new=True)
    assert store.load("session-0014", now=3_200).image_ids == frozenset()
