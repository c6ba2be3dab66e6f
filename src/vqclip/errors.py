"""The one exception type for user mistakes: the CLI prints its message on one line."""

from __future__ import annotations


class VqclipError(Exception):
    """A problem the user can fix; the message names the problem and the fix."""
