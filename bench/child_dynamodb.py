"""Figure 1, AWS calls: what each kind of turn costs in AWS API calls when deployed (SESSIONS_TABLE set),
counted on botocore's client against moto (moto.mock_aws). Runs in the project venv, which has moto.

The Dify simulator is on loopback (urllib3 calls are not intercepted by moto). Also reports the largest item
the relay wrote, to turn calls into DynamoDB request units (one unit per write of up to 1 KB, one per strongly
consistent read of up to 4 KB).
"""

import harness

harness.child_setup()

import json  # noqa: E402
import sys  # noqa: E402
from collections import Counter  # noqa: E402

import boto3  # noqa: E402
import botocore.client  # noqa: E402
from moto import mock_aws  # noqa: E402

from local.apigw import LambdaContext  # noqa: E402

calls: Counter[str] = Counter()
counter_writes = 0  # writes to rate counter items (pk "rate#...")
session_writes = 0  # writes to session items (pk "session#...")
make_api_call = botocore.client.BaseClient._make_api_call


def counted(self, operation_name, api_params):
    global counter_writes, session_writes
    key = api_params.get("Key", api_params.get("Item", {})).get("pk", {}).get("S", "")
    writes = operation_name in ("PutItem", "UpdateItem")
    counter_writes += writes and key.startswith("rate#")
    session_writes += writes and key.startswith("session#")
    calls[f"{self.meta.service_model.service_name}:{operation_name}"] += 1
    return make_api_call(self, operation_name, api_params)


def item_bytes(item: dict) -> int:
    """DynamoDB's item size: attribute names plus values (numbers counted as their digits)."""
    size = 0
    for name, value in item.items():
        ((kind, data),) = value.items()
        size += len(name.encode()) + (len(str(data).encode()) if kind in ("S", "N", "B") else 1)
    return size


with mock_aws():
    secrets = boto3.client("secretsmanager")
    secrets.create_secret(Name=harness.SECRET_NAME, SecretString=harness.DIFY_KEY)
    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(
        TableName=harness.TABLE,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    )

    import app

    botocore.client.BaseClient._make_api_call = counted
    turns = []

    def turn(label: str, body: dict, headers: dict | None = None) -> dict:
        global counter_writes, session_writes
        calls.clear()
        counter_writes = session_writes = 0
        result = app.lambda_handler(harness.chat_event(body, headers=headers), LambdaContext())
        turns.append(
            {
                "turn": label,
                "status": result["statusCode"],
                "calls": dict(calls),
                "counter_writes": counter_writes,
                "session_writes": session_writes,
            }
        )
        return json.loads(result["body"])

    first = turn("first turn (cold container: key fetched)", {"message": "Hello!"})
    session = first["sessionId"]
    turn("first turn (warm container)", {"message": "Hello again!"})
    for n in range(3):
        turn(f"continued turn {n + 1}", {"message": f"And then {n}?", "sessionId": session})
    key = {"Idempotency-Key": "bench-idempotency-0001"}
    turn("turn with Idempotency-Key", {"message": "Once only.", "sessionId": session}, key)
    turn("the same turn resent", {"message": "Once only.", "sessionId": session}, key)

    botocore.client.BaseClient._make_api_call = make_api_call
    items = dynamodb.scan(TableName=harness.TABLE)["Items"]


def kind(item: dict) -> str:
    prefix = item["pk"]["S"].split("#")[0]
    return {"session": "session", "rate": "rate counter"}.get(prefix, "idempotency record")


largest: dict[str, int] = {}
for item in items:
    largest[kind(item)] = max(largest.get(kind(item), 0), item_bytes(item))
harness.report({"python": sys.version.split()[0], "turns": turns, "largest_item_bytes": largest})
