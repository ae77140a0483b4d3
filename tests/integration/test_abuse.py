"""The abuse scripts of bench/abuse.py against `make local`: each must hold (figures in docs/security.md)."""

import pytest

from bench.abuse import SCENARIOS, SERVER
from tests.support import local_server


@pytest.fixture(scope="module")
def relay():
    with local_server(SERVER) as url:
        yield url


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.__name__ for s in SCENARIOS])
def test_the_relay_holds(relay, scenario):
    row = scenario(relay)
    assert row.ok, f"{row.scenario}: {row.sent} -> {row.figure}"
