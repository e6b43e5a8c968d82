"""`hub keys create|list|revoke`: API keys through the application service (SPEC §10)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import orjson

from hub.errors import HubError
from hub.settings import Settings


def _hub(settings: Settings) -> Any:
    from api.app import build_hub

    return build_hub(settings)


def create(args: argparse.Namespace, settings: Settings) -> int:
    hub = _hub(settings)
    try:
        record, key = hub.keys.create(args.role, args.name)
    except HubError as error:
        print(f"hub keys create: {error}", file=sys.stderr)
        return 2
    finally:
        hub.close()
    if args.json:
        print(orjson.dumps({**record.as_dict(), "key": key}).decode())
    else:
        print(key)
        print(
            f"id {record.id}, role {record.role}: this key is shown only now; keep it safe",
            file=sys.stderr,
        )
    return 0


def list_keys(args: argparse.Namespace, settings: Settings) -> int:
    hub = _hub(settings)
    try:
        keys = hub.keys.list()
    finally:
        hub.close()
    if args.json:
        print(orjson.dumps([k.as_dict() for k in keys]).decode())
        return 0
    print(f"{'id':<12}  {'role':<18}  {'created':<25}  {'revoked':<25}  name")
    for key in keys:
        revoked = key.revoked_at or "-"
        print(
            f"{key.id:<12}  {key.role:<18}  {key.created_at:<25}  {revoked:<25}  {key.name or ''}"
        )
    return 0


def revoke(args: argparse.Namespace, settings: Settings) -> int:
    hub = _hub(settings)
    try:
        record = hub.keys.revoke(args.id)
    except HubError as error:
        print(f"hub keys revoke: {error}", file=sys.stderr)
        return 1
    finally:
        hub.close()
    print(f"revoked {record.id} ({record.role}) at {record.revoked_at}", file=sys.stderr)
    return 0


def register(commands: Any) -> None:
    keys = commands.add_parser("keys", help="API keys: create, list, revoke")
    sub = keys.add_subparsers(dest="keys_command", required=True)
    make = sub.add_parser("create", help="a new key, printed once on stdout")
    make.add_argument(
        "--role", required=True, help="agent, dashboard, auditor, admin or channel:<name>"
    )
    make.add_argument("--name", help="a note: who or what holds the key")
    make.add_argument("--json", action="store_true", help="print the record and key as JSON")
    make.set_defaults(run=create)
    listing = sub.add_parser("list", help="ids, roles, created and revoked times (never keys)")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=list_keys)
    drop = sub.add_parser("revoke", help="revoke a key by id (every process within seconds)")
    drop.add_argument("id")
    drop.set_defaults(run=revoke)
