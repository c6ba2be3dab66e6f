"""What every command shares: the one-line-error parser and the number types."""

from __future__ import annotations

import argparse
from typing import NoReturn

from vqclip.errors import VqclipError


class Parser(argparse.ArgumentParser):
    """An argument parser whose mistakes become one-line :class:`VqclipError`s."""

    def error(self, message: str) -> NoReturn:
        raise VqclipError(f"{message} (see '{self.prog} --help')")


def non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive(text: str) -> int:
    value = non_negative(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be > 0")
    return value
