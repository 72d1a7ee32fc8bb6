"""Commands for the unit's keys: create them at install, hand the public one to the department."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from alprd import keys
from alprd.audit import AccessLog
from alprd.cli.common import guarded
from alprd.config import Config
from alprd.store import Store


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("keys", help="the unit's signing key and access-log secret")
    ksub = p.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    k = ksub.add_parser("init", help="create the keys if missing (install does it; never replaces one)")
    k.set_defaults(func=cmd_keys_init)
    k = ksub.add_parser("export-public", help="print (or write) the public key the department checks bundles with")
    k.add_argument("--out", type=Path, metavar="FILE", help="write it to FILE instead of printing it")
    k.set_defaults(func=cmd_keys_export_public)


@guarded
def cmd_keys_init(args: argparse.Namespace, config: Config, store: Store) -> int:
    signing = keys.signing_key(config.store.signing_key_path)
    created = AccessLog(store).init_secret()
    print(f"signing key {config.store.signing_key_path} (key id {keys.key_id(signing.public_key())})")
    print(f"access-log secret {config.store.audit_secret_path}" + (" created" if created else " (already there)"))
    print("back both up with the database; give the department the output of: alprd keys export-public")
    return 0


def cmd_keys_export_public(args: argparse.Namespace, config: Config) -> int:
    try:
        key = keys.signing_key(config.store.signing_key_path)
    except keys.KeyFileError as err:
        print(f"alprd: {err}", file=sys.stderr)
        return 2
    pem = keys.public_pem(key)
    if args.out:
        args.out.write_bytes(pem)
        print(f"{args.out}: public key {keys.key_id(key.public_key())}", file=sys.stderr)
    else:
        sys.stdout.write(pem.decode())
    return 0
