"""The ``pystore`` console script's entry point, outside the package.

Importing ``pystore`` takes ~0.2 s (protobuf, cffi, asyncio); a Ctrl-C in
that time would end the command with a KeyboardInterrupt traceback, since
the CLI's own handler (``pystore.cli.main``) is not installed yet.  This
module imports nothing but ``sys`` before it catches that interrupt, so the
command ends as any interrupted command does: ``pystore: interrupted`` on
stderr, exit status 130 (docs/cli.md).
"""

from __future__ import annotations

import sys


def main() -> int:
    try:
        from pystore.cli import main as run
    except KeyboardInterrupt:
        sys.stderr.write("pystore: interrupted\n")
        return 130
    return run()


if __name__ == "__main__":
    sys.exit(main())
