"""`eaves faults`: load the local stack, kill the origin part-way, restart it, count how requests were served."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from loadtest.fault_run import add_arguments, main_with

    parser = sub.add_parser("faults", help="fault run: origin killed and restarted under load (127.0.0.1 only)")
    add_arguments(parser)
    parser.set_defaults(func=main_with)
