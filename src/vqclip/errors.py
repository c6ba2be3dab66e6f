"""The one exception type for user mistakes: the CLI, and benchmarks through ``run_script``,
print its message on one line."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path


class VqclipError(Exception):
    """A problem the user can fix; the message names the problem and the fix."""


def run_script(main: Callable[[], object]) -> None:
    """Runs a benchmark's or script's ``main`` as the CLI runs a command: a user mistake
    (a :class:`VqclipError`, e.g. an unknown ``--clip``) prints one line, ``NAME: error:
    ...``, and exits 2, never a traceback."""
    try:
        main()
    except VqclipError as e:
        print(f"{Path(sys.argv[0]).name}: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
