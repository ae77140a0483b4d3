"""Registers an app with a deployed stack, or updates it: `make app APP=sales ENTRY=sales.json`.

The entry (a JSON file of the app's settings, see README "Many apps behind one stack") is checked as the
relay checks it, then stored as the Parameter Store parameter `/dify-relay/<stack>/apps/<app>`; the app's
Dify key goes to the secret `dify-relay/<stack>/apps/<app>` (from DIFY_APP_KEY, or asked for when the secret
is new). Running containers pick the app up within the stack's RegistryCacheSeconds; no redeploy.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "layers" / "relay"))

from relay.apps import ConfigurationError, parse_app  # noqa: E402


def main(argv: list[str] | None = None, *, ask_key=getpass.getpass) -> int:
    parser = argparse.ArgumentParser(prog="make app", description=__doc__.split("\n")[0])
    parser.add_argument("app", help='the app id the widget names: data-app="<app>"')
    parser.add_argument("entry", type=Path, help="a JSON file of the app's settings")
    parser.add_argument("--stack", default="dify-relay", help="the stack's name (samconfig.toml stack_name)")
    parser.add_argument("--region", default=None, help="the stack's region (else the AWS CLI's default)")
    args = parser.parse_args(argv)

    prefix = f"dify-relay/{args.stack}/apps/"
    secret_name = prefix + args.app
    try:
        entry = json.loads(args.entry.read_text())
    except (OSError, ValueError) as error:
        print(f"{args.entry}: not a readable JSON file ({error})", file=sys.stderr)
        return 2
    if not isinstance(entry, dict):
        print(f"{args.entry}: must hold a JSON object", file=sys.stderr)
        return 2
    entry.setdefault("keySecret", secret_name)
    try:
        parse_app(args.app, entry, secret_prefix=prefix)
    except ConfigurationError as error:
        print(f"not registered: {error}", file=sys.stderr)
        return 2

    import boto3

    secrets = boto3.client("secretsmanager", region_name=args.region)
    ssm = boto3.client("ssm", region_name=args.region)
    key = os.environ.get("DIFY_APP_KEY")
    try:
        secrets.describe_secret(SecretId=entry["keySecret"])
        exists = True
    except secrets.exceptions.ResourceNotFoundException:
        exists = False
    if not exists:
        key = key or ask_key(f"Dify app key for {args.app} (input hidden): ")
        if not key.strip():
            print("not registered: the app's Dify key is needed for a new app", file=sys.stderr)
            return 2
        secrets.create_secret(Name=entry["keySecret"], SecretString=key.strip())
    elif key:
        secrets.put_secret_value(SecretId=entry["keySecret"], SecretString=key.strip())
    name = f"/dify-relay/{args.stack}/apps/{args.app}"
    ssm.put_parameter(
        Name=name,
        Value=json.dumps(entry, separators=(",", ":")),
        Type="String",
        Overwrite=True,
        Description=f"Dify Relay app {args.app}",
    )
    print(f"Registered {args.app}: {name} (key in {entry['keySecret']}).")
    print(f'Widget: <script src="relay-widget.js" data-relay-url="<ApiUrl>" data-app="{args.app}"></script>')
    return 0


if __name__ == "__main__":
    sys.exit(main())
