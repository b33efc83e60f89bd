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


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("streamdream")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def given_only(parser: argparse.ArgumentParser) -> dict:
    """Make `parser` leave out of its namespace every option the command line does not give, so what is there
    was given; returns the defaults it had, for the caller to fill in after merging."""
    defaults = {}
    for action in parser._actions:  # argparse has no public list of a parser's actions
        if action.dest != "help" and action.default is not argparse.SUPPRESS:
            defaults[action.dest] = action.default
            action.default = argparse.SUPPRESS
    return defaults
