"""``python -m pystore`` / the ``pystore`` console script."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pystore", description="pystore command line")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="run the README's main job on a local store")
    demo.add_argument("path", nargs="?", default="./.pystore-demo")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo

        return run_demo(args.path)
    return 2


if __name__ == "__main__":
    sys.exit(main())
