"""`eaves keys create` refuses a tenant id that could not be a KV key segment, and writes nothing."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from eaves.commands.keys import create_key
from shared.kv_lmdb import LmdbKV
from shared.local_stack import LocalStack


def args(tmp_path: Path, tenant: str) -> argparse.Namespace:
    return argparse.Namespace(tenant=tenant, tier="pro", name="", data_dir=tmp_path)


def stored(tmp_path: Path) -> list[str]:
    items, _ = LmdbKV(LocalStack(tmp_path).kv_path).list(prefix="key/")
    return [name for name, _, _ in items]


@pytest.mark.parametrize("tenant", ["acme ", "", "acme/beta", "ácme", "x" * 65, "a:b", "h-" + "0" * 32 + "\n"])
def test_invalid_tenant_is_refused_with_the_rule(tmp_path: Path, tenant: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 2, the rule in the message, no key printed and none stored."""
    assert create_key(args(tmp_path, tenant)) == 2
    out, err = capsys.readouterr()
    assert out == "" and "--tenant" in err and "A-Z, a-z, 0-9" in err
    assert stored(tmp_path) == []


def test_valid_tenant_gets_a_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A tenant inside the rule is stored as given."""
    assert create_key(args(tmp_path, "acme.eu-1_b")) == 0
    assert capsys.readouterr().out.startswith("eav_") and len(stored(tmp_path)) == 1
