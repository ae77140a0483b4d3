"""Settings shared by the whole suite. Every Dify key used in tests contains CANARY so a leak is findable."""

import os

import pytest

CANARY = "CANARY-KEY"
DIFY_KEY = f"app-{CANARY}-9f8e7d6c5b4a"
ROTATED_KEY = f"app-{CANARY}-rotated-0a1b2c3d"

# Set before any relay module is imported: Powertools loggers take their service name at creation.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "dify-relay")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "INFO")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "DifyRelay")
for name, value in {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
}.items():
    os.environ[name] = value


@pytest.fixture(scope="session")
def dify_server():
    """One Dify simulator per test process (one per pytest-xdist worker), started once; each test resets
    it to the apps it needs (fixtures `simulator` and `sim`)."""
    from local.dify_simulator import DifySimulator

    with DifySimulator(apps={}) as server:
        yield server
