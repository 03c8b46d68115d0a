"""``python -m labcore.engines fetch|up|down|status [names...]`` — the real engines as plain processes."""

from __future__ import annotations

import argparse
import sys

from labcore.engines.stack import ORDER, down, fetch, status, up
from labcore.errors import BackendUnavailable
from labcore.settings import Settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m labcore.engines", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for command, text in [
        ("fetch", "download/build the engines into the cache (no start)"),
        ("up", "start the engines (default: all) on their compose host ports"),
    ]:
        sub = commands.add_parser(command, help=text)
        sub.add_argument("names", nargs="*", choices=[[], *ORDER], metavar="name", help=", ".join(ORDER))
    commands.add_parser("down", help="stop what up started")
    commands.add_parser("status", help="what up started, and whether it still runs")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    settings = Settings()
    try:
        if args.command == "fetch":
            fetch(settings, args.names or None)
        elif args.command == "up":
            up(settings, args.names or None)
        elif args.command == "down":
            if not down(settings):
                print("nothing to stop")
        else:
            engines = status(settings)
            if not engines:
                print("no engines started (python -m labcore.engines up)")
            for name, entry in engines.items():
                state = "running" if entry["running"] else "NOT running"
                print(f"{name:<11} {state:<12} " + "  ".join(f"{k}={v}" for k, v in entry["endpoints"].items()))
    except BackendUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
