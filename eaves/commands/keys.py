"""`eaves keys`: API keys for tenants, stored in the KV as SHA-256 hashes only."""

from __future__ import annotations

import argparse
import json
import sys
import time

from eaves.commands.common import add_data_dir


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = sub.add_parser("keys", help="create, list and revoke API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)

    create = keys_sub.add_parser("create", help="create a key; prints the key alone on stdout")
    create.add_argument("--tenant", required=True, help="the tenant id: 1-64 of A-Z a-z 0-9 . _ -")
    create.add_argument("--tier", required=True, help="a tier the edge knows (free, pro, enterprise)")
    create.add_argument("--name", default="", help="a label to tell keys apart")
    add_data_dir(create)
    create.set_defaults(func=create_key)

    listing = keys_sub.add_parser("list", help="list key hashes with tenant and tier (JSON lines)")
    add_data_dir(listing)
    listing.set_defaults(func=list_keys)

    revoke = keys_sub.add_parser("revoke", help="revoke a key (edges forget it within their key cache TTL)")
    revoke.add_argument("key", help="the API key, or its SHA-256 hash as shown by `keys list`")
    add_data_dir(revoke)
    revoke.set_defaults(func=revoke_key)


def _store(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from shared.kv_lmdb import LmdbKV
    from shared.local_stack import LocalStack

    return LmdbKV(LocalStack(args.data_dir).kv_path)


def create_key(args: argparse.Namespace) -> int:
    from edge.auth import KEY_PREFIX, api_key_hash, api_key_record, new_api_key
    from shared.cache_keys import InvalidTenant, validate_tenant

    try:
        # The tenant id becomes a segment of every KV key of the tenant: refuse it here, not at request time.
        validate_tenant(args.tenant)
    except InvalidTenant as exc:
        print(f"eaves keys create: --tenant: {exc}", file=sys.stderr)
        return 2
    if not args.tier.strip():
        print("eaves keys create: --tier must not be empty", file=sys.stderr)
        return 2
    key = new_api_key()
    _store(args).put(KEY_PREFIX + api_key_hash(key), api_key_record(args.tenant, args.tier, args.name, time.time()))
    print(key)
    return 0


def list_keys(args: argparse.Namespace) -> int:
    from edge.auth import KEY_PREFIX

    store = _store(args)
    cursor = None
    while True:
        items, cursor = store.list(prefix=KEY_PREFIX, cursor=cursor)
        for name, _, _ in items:
            found = store.get(name)
            record = json.loads(found[0]) if found else {}
            print(json.dumps({"hash": name[len(KEY_PREFIX):], **record}))
        if cursor is None:
            return 0


def revoke_key(args: argparse.Namespace) -> int:
    from edge.auth import KEY_PREFIX, api_key_hash

    store = _store(args)
    digest = args.key if len(args.key) == 64 and all(c in "0123456789abcdef" for c in args.key) \
        else api_key_hash(args.key)
    if store.get(KEY_PREFIX + digest) is None:
        print("eaves keys revoke: no such key", file=sys.stderr)
        return 1
    store.delete(KEY_PREFIX + digest)
    print(f"revoked {digest}", file=sys.stderr)
    return 0
