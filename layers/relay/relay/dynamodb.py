"""What the DynamoDB-backed stores share: a lazily created client and one failure type."""

from __future__ import annotations

from contextlib import contextmanager


class StoreUnavailable(Exception):
    """DynamoDB could not be used (throttled, unreachable, denied); the caller decides how to degrade."""


class DynamoDBTable:
    def __init__(self, table_name: str, client=None) -> None:
        self.table_name = table_name
        self._client = client

    @property
    def client(self):
        if self._client is None:
            import botocore.session

            self._client = botocore.session.get_session().create_client("dynamodb")
        return self._client

    @contextmanager
    def unavailable_as_store_error(self):
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except (BotoCoreError, ClientError) as error:
            raise StoreUnavailable(type(error).__name__) from error
