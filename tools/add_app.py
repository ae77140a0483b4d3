"""Registers an app with a deployed stack, or updates it: `make app APP=sales ENTRY=sales.json [STACK=...]`.

The entry (a JSON file of the app's settings, see README "Many apps behind one stack") is checked as the
relay checks it, then stored under the stack's app registry (its AppRegistryPath output) as `<path>/<app>`;
the app's Dify key goes to the secret `<AppSecretPrefix><app>` (from DIFY_APP_KEY, or asked for when the
secret is new). Running containers pick the app up within the stack's RegistryCacheSeconds; no redeploy.
The stack is samconfig.toml's default one unless named; one that is not deployed, or predates the registry,
is refused before anything is stored.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "layers" / "relay"))

from relay.apps import ConfigurationError, parse_app  # noqa: E402

OUTPUTS = ("AppRegistryPath", "AppSecretPrefix")


def default_stack() -> str:
    """The stack `sam deploy` deploys without --config-env (samconfig.toml's default environment)."""
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    return config["default"]["global"]["parameters"]["stack_name"]


class Refused(Exception):
    pass


def registry_of(cloudformation, stack: str) -> tuple[str, str]:
    """The stack's registry path and secret prefix, as the deployed stack states them."""
    try:
        [described] = cloudformation.describe_stacks(StackName=stack)["Stacks"]
    except cloudformation.exceptions.ClientError as error:
        raise Refused(
            f"no stack {stack!r} here ({error.response['Error']['Message']}); deploy it first, or name "
            "the one to use: make app ... STACK=<stack name>"
        ) from None
    outputs = {output["OutputKey"]: output["OutputValue"] for output in described.get("Outputs", [])}
    if not all(name in outputs for name in OUTPUTS):
        raise Refused(
            f"stack {stack!r} has no app registry yet: deploy this version of the template to it first"
        )
    return outputs["AppRegistryPath"], outputs["AppSecretPrefix"]


def main(argv: list[str] | None = None, *, ask_key=getpass.getpass) -> int:
    parser = argparse.ArgumentParser(prog="make app", description=__doc__.split("\n")[0])
    parser.add_argument("app", help='the app id the widget names: data-app="<app>"')
    parser.add_argument("entry", type=Path, help="a JSON file of the app's settings")
    parser.add_argument(
        "--stack", default=None, help="the stack's name (default: samconfig.toml's default stack)"
    )
    parser.add_argument("--region", default=None, help="the stack's region (else the AWS CLI's default)")
    args = parser.parse_args(argv)
    try:
        register(args.app, args.entry, args.stack or default_stack(), args.region, ask_key)
    except Refused as refused:
        print(f"not registered: {refused}", file=sys.stderr)
        return 2
    return 0


def checked(app_id: str, entry: dict, prefix: str | None = None) -> None:
    try:
        parse_app(app_id, entry, secret_prefix=prefix)
    except ConfigurationError as error:
        raise Refused(str(error)) from None


def register(app_id: str, entry_file: Path, stack: str, region: str | None, ask_key) -> None:
    try:
        entry = json.loads(entry_file.read_text())
    except (OSError, ValueError) as error:
        raise Refused(f"{entry_file}: not a readable JSON file ({error})") from None
    if not isinstance(entry, dict):
        raise Refused(f"{entry_file}: must hold a JSON object")
    # The entry's own fields first, before any AWS call (the key's secret is named after the stack, below).
    checked(app_id, {"keySecret": "named-below"} | entry)

    import boto3

    path, prefix = registry_of(boto3.client("cloudformation", region_name=region), stack)
    entry.setdefault("keySecret", prefix + app_id)
    checked(app_id, entry, prefix)

    secrets = boto3.client("secretsmanager", region_name=region)
    key = (os.environ.get("DIFY_APP_KEY") or "").strip()
    try:
        secrets.describe_secret(SecretId=entry["keySecret"])
    except secrets.exceptions.ResourceNotFoundException:
        key = key or ask_key(f"Dify app key for {app_id} (input hidden): ").strip()
        if not key:
            raise Refused("the app's Dify key is needed for a new app") from None
        secrets.create_secret(Name=entry["keySecret"], SecretString=key)
    else:
        if key:
            secrets.put_secret_value(SecretId=entry["keySecret"], SecretString=key)
    name = f"{path}/{app_id}"
    boto3.client("ssm", region_name=region).put_parameter(
        Name=name,
        Value=json.dumps(entry, separators=(",", ":")),
        Type="String",
        Overwrite=True,
        Description=f"Dify Relay app {app_id}",
    )
    print(f"Registered {app_id} with stack {stack}: {name} (key in {entry['keySecret']}).")
    print(f'Widget: <script src="relay-widget.js" data-relay-url="<ApiUrl>" data-app="{app_id}"></script>')


if __name__ == "__main__":
    sys.exit(main())
