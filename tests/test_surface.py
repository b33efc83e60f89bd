"""The surface a performer meets: each command's help on one screen with a few dream options in front, and a
package that says what is (no dates, no research imports)."""
import ast
import re
from pathlib import Path

import pytest

import streamdream
from streamdream.cli import main

PACKAGE = Path(streamdream.__file__).parent
SCREEN_LINES = 55      # a laptop terminal at a readable size
SCREEN_COLUMNS = 110


@pytest.mark.parametrize("command", [["render"], ["live"], ["loop"], ["params"], ["listen", "make"],
                                     ["listen", "score"], ["devices"], ["midi", "learn"], ["models", "info"],
                                     ["models", "annotate"], ["models", "classify"], ["service", "install"], []])
def test_every_help_fits_one_screen(command, capsys):
    with pytest.raises(SystemExit) as done:
        main([*command, "--help"])
    assert done.value.code == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) <= SCREEN_LINES, f"{len(lines)} lines"
    assert max(map(len, lines)) <= SCREEN_COLUMNS


@pytest.mark.parametrize("command", ["render", "live", "loop"])
def test_a_few_dream_options_face_the_player(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    dream = text[text.index("\ndream:\n"):]
    options = re.findall(r"^  (--[a-z-]+)", dream, re.MULTILINE)
    assert "--set" in options and "--preset" in options and "--target" in options
    assert len(options) <= 12, options
    # render's --threads is the user's (a batch divides the cores); live's is a test's
    test_only = ("--lockstep", "--worker", "--blocksize") + (("--threads",) if command != "render" else ())
    for hidden in test_only + ("--steps", "--eot", "--ceiling"):
        assert f"{hidden} " not in text


def test_the_package_carries_no_dates_and_never_imports_the_lab():
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"\b20\d\d-\d\d-\d\d\b", text), path
        for node in ast.walk(ast.parse(text)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(name == "lab" or name.startswith("lab.") for name in names), path
