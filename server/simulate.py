"""`receiptd simulate …`: send realistic signed store notifications to a running service."""

from __future__ import annotations

import argparse


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register `simulate apple|google` (filled in as the store paths land)."""
    cmd = sub.add_parser("simulate", help="send simulated store notifications (demo)")
    cmd.add_subparsers(dest="store", required=True)
