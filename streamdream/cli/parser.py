"""The command line's argparse: one-line usage errors (exit 2) and help that keeps one option to a line."""
from __future__ import annotations

import argparse

from ..errors import EXIT_USAGE


class _Help(argparse.HelpFormatter):
    """Option names in a 24-column gutter, so most options' help fits on their own line."""

    def __init__(self, prog):
        super().__init__(prog, max_help_position=24, width=110)


class Parser(argparse.ArgumentParser):
    """argparse, but usage errors are one line and exit 2 like every other bad input."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(EXIT_USAGE, f"streamdream: error: {message} (see: {self.prog} --help)\n")
