"""`eaves measure-generation`: edge-minus-origin streaming TTFB (simulator) and the embedded model's tokens/s."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("measure-generation", add_help=False,
                            help="measure streaming TTFB through the edge vs the origin, and model tokens/s")
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from origin.measure import main

    return main(list(args.rest))
