"""``eaves``: one console script, one sub-command module per job (``eaves/commands/*.py``).

Each command module exposes ``register(subparsers)``, which adds its parser and sets ``func`` to a
callable taking the parsed namespace and returning an exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Imported lazily by name so `eaves keys create` never pays for starlette, onnxruntime or torch.
COMMAND_MODULES = ("up", "origin", "edge", "keys", "intent", "loadtest", "scenarios", "bench", "faults", "measure")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eaves", description=__doc__.splitlines()[0] if __doc__ else None)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"eaves.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"eaves.commands.{name}":
                continue  # that command is not part of this build yet
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
