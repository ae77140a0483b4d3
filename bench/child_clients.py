"""Figure 2, in a process of its own: the AWS clients a deployed relay builds at init (DynamoDB and Secrets
Manager), made either from one botocore session, as the relay does, or with boto3.client. Both import the
runtime's SDK from scratch; nothing is called.

argv: botocore | boto3
"""

import time

import harness

harness.child_setup()

import sys  # noqa: E402

WAY = sys.argv[1]
started = time.monotonic()
if WAY == "botocore":
    import botocore.session

    session = botocore.session.get_session()
    clients = [session.create_client(service) for service in ("dynamodb", "secretsmanager")]
elif WAY == "boto3":
    import boto3

    clients = [boto3.client(service) for service in ("dynamodb", "secretsmanager")]
else:
    raise SystemExit(f"unknown way {WAY!r}")
built = time.monotonic()
harness.report({"seconds": built - started, "boto3_imported": "boto3" in sys.modules})
