"""The ``segstream`` command line's entry point (app/cli.py has the subcommands)."""

from __future__ import annotations


def main() -> int:
    from app.cli import run

    return run()
