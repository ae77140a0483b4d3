import socket

import pytest


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Unit tests run without sockets: any attempt to connect fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("unit tests must not open network connections")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
