"""The dream's options, shared by render, live and loop, and `streamdream params`, all read from params.RANGES.

A few options face the player (those with an `option` in the table); every parameter, those included,
is also `--set KEY=VALUE`. What is not given comes from the piece's [dream] table (loop), then --preset.
"""
from __future__ import annotations

import argparse
import json
import re

from ..errors import ParameterError
from ..params import RANGES, Params, parse_value, params_table

SET_HELP = "any parameter, e.g. --set steps=4 (repeatable; `streamdream params` lists them)"


GRID = ("preset", "target", "seed")   # render's variation grid: each may be repeated (--seed also takes A-B)


def add_dream_options(p: argparse.ArgumentParser, grid: bool = False) -> None:
    """--preset, the table's front-panel options and --set. None has a parser default, so params_from_args can
    tell what was given on the command line from what was not. With `grid`, GRID's options collect lists."""
    from ..control.presets import BUILTIN_PRESETS

    def varied(name: str) -> dict:
        return {"action": _Repeated} | ({"type": _seed_or_range} if name == "seed" else {}) \
            if grid and name in GRID else {}

    def note(name: str) -> str:
        return "; repeat it for a grid" * (grid and name in GRID) + "; A-B for a range" * (grid and name == "seed")

    g = p.add_argument_group("dream")
    g.add_argument("--preset", default=argparse.SUPPRESS, metavar="NAME",  # builtin_preset names old ones too
                   help=f"{' | '.join(BUILTIN_PRESETS)} (default vivid; docs/SOUND.md){note('preset')}",
                   **varied("preset"))
    for name, spec in RANGES.items():
        if spec.option is None:
            continue
        kind = {"int": int, "float": float}.get(spec.kind, str)
        shown = f" ({spec}, default {spec.default:g})" if spec.numeric else ""
        metavar = {"int": "N", "float": "DB" if "dB" in spec.unit else "X"}.get(spec.kind, name.split("_")[-1].upper())
        g.add_argument(spec.option, dest=name, default=argparse.SUPPRESS, metavar=metavar,
                       help=spec.help + shown + note(name), **({"type": kind} | varied(name)))
    g.add_argument("--set", dest="set_values", action="append", default=[], metavar="KEY=VALUE", help=SET_HELP)


class _Repeated(argparse.Action):
    """A grid option: its value as given once (as for one file), a list of them when it is repeated."""

    def __call__(self, parser, namespace, value, option_string=None):
        had = getattr(namespace, self.dest, None)
        setattr(namespace, self.dest, value if had is None else (had if isinstance(had, list) else [had]) + [value])


def _seed_or_range(text: str) -> int | str:
    """--seed for render: a number as for one file, or a range or list (1-5, 1,4,9) for a grid."""
    return int(text) if re.fullmatch(r"\s*-?\d+\s*", text) else text


def parse_sets(items: list[str]) -> dict:
    """`--set KEY=VALUE` items -> {field: value}, each checked against the table (KEY may use - for _)."""
    values = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not key:
            raise ParameterError(f"--set {item!r}: write KEY=VALUE, e.g. --set steps=4 (`streamdream params` "
                                 "lists the keys)")
        values[key] = parse_value(key, text.strip())
    return values


def given_dream_options(a: argparse.Namespace) -> dict:
    """The dream settings given on the command line: --set first, the named options over them."""
    given = parse_sets(getattr(a, "set_values", []))
    given.update({name: getattr(a, name) for name, spec in RANGES.items() if spec.option and hasattr(a, name)})
    return given


def params_from_args(a: argparse.Namespace, piece_dream: dict | None = None) -> Params:
    """--preset (default vivid), then a piece's [dream] table, then what the command line gives."""
    from ..control.presets import builtin_preset

    base = builtin_preset(getattr(a, "preset", "vivid"))
    return base.with_changes(**(piece_dream or {})).with_changes(**given_dream_options(a))


def cmd_params(a: argparse.Namespace) -> int:
    rows = params_table()
    if a.json:
        print(json.dumps(rows, indent=1))
        return 0
    head = ("parameter", "values", "default", "heard", "set with")
    def shown(value) -> str:  # as TOML and --set write it
        if value is None:
            return "none"
        if isinstance(value, bool):
            return str(value).lower()
        return f"{value:g}" if isinstance(value, float) else str(value)

    table = [head] + [(r["name"], r["values"], shown(r["default"]), r["heard"], r["option"]) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for row, r in zip(table, [None] + rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if r is not None:
            print(" " * 4 + r["help"])
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("params", help="every dream parameter: range, default, when it is heard, what it does")
    p.add_argument("--json", action="store_true", help="as JSON, one object per parameter")
    p.set_defaults(func=cmd_params)
