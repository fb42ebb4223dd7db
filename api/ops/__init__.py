"""The operator's commands: ``hub events``, ``hub sessions`` and ``hub check``.

They work on the same ``HUB_*`` settings as ``hub up`` (data directory, database,
broker). Exit status: 0 ok, 1 a check failed or nothing was found where something
was required, 2 a usage or configuration error. Data goes to stdout; progress and
messages to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from api.ops.parsers import add_parsers

__all__ = ["add_parsers", "run"]


def run(args: argparse.Namespace) -> int:
    """Run the command ``args.handler`` names: ``(module in api.ops, function)``."""
    from sqlalchemy.exc import DBAPIError

    from api.ops.common import FAILED, CommandError

    prog = " ".join(filter(None, ["hub", args.command, getattr(args, "action", None)]))
    module, name = args.handler
    handler = getattr(importlib.import_module(f"api.ops.{module}"), name)
    try:
        status: int = handler(args)
    except CommandError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return exc.status
    except DBAPIError as exc:
        # The driver's message, never bound values (the engine hides them: PHI).
        detail = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        print(f"{prog}: database error: {detail}", file=sys.stderr)
        return FAILED
    except BrokenPipeError:
        # The reader went away (``hub events replay | head``): not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return status
