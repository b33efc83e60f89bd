"""The piece file: everything a piece needs in one TOML, merged once with the command line."""
from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from ...errors import ParameterError
from ...params import Params, check_value
from .schedule import DaySchedule, parse_clock


@dataclass(frozen=True)
class Piece:
    """Everything a piece needs: what `loop` plays and how. Read from a piece TOML ([piece], [dream],
    [schedule], [web]) and merged once with the command line (`with_options`), whose options win. The names
    are the TOML's keys and the command line's options (`evolve_seed` is `--evolve-seed`)."""
    files: tuple[str, ...] = ()
    feedback: float = 0.0
    evolve: bool = False
    evolve_period_s: float = 120.0
    evolve_seed: int = 0
    record: str | None = None
    record_input: str | None = None
    record_format: str | None = None
    device: str | None = None       # the sound device (the dream's compute device is [dream] torch_device)
    samplerate: int | None = None
    blocksize: int = 0
    budget_s: float | None = None   # None: the window's length (the material is known: dreams are read ahead)
    duration: float | None = None
    log: str | None = None
    stats: str | None = None
    osc_port: int | None = None
    web: str | None = None          # [web] listen (or --web): [HOST:]PORT of the status and control page
    web_token: str | None = None    # [web] token: the page's token (else generated when not on loopback)
    dream: dict = field(default_factory=dict)   # dream parameters by their `streamdream params` names
    schedule: DaySchedule | None = None

    def with_options(self, given: dict) -> "Piece":
        """This piece with the command line's options on top (only those given; `files` if any)."""
        changes = {key: value for key, value in given.items() if key in SETTINGS or key == "web"}
        if given.get("files"):
            changes["files"] = tuple(given["files"])
        return replace(self, **changes)


SETTINGS = {f.name for f in fields(Piece)} - {"dream", "schedule", "files", "web", "web_token"}  # [piece] keys
RENAMED = {"seed": "evolve_seed", "budget": "budget_s"}  # [piece] keys of earlier versions
PATHS = ("record", "record_input", "log", "stats")       # relative to the piece file


def load_piece(path: str) -> Piece:
    """Read and check a piece TOML; every mistake is one line naming the file and the key."""
    p = Path(path)
    if not p.is_file():
        raise ParameterError(f"piece file {p} does not exist; check the path")
    try:
        data = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ParameterError(f"{p}: not valid TOML ({exc})") from None
    table = data.pop("piece", {})
    dream = data.pop("dream", {})
    sched = data.pop("schedule", None)
    web = data.pop("web", {})
    if data:
        raise ParameterError(f"{p}: unknown section(s) {sorted(data)}; known: [piece], [dream], [schedule], [web]")
    if not isinstance(web, dict) or set(web) - {"listen", "token"}:
        raise ParameterError(f"{p}: [web] takes listen = \"[HOST:]PORT\" and token = \"...\"")
    for old, new in RENAMED.items():
        if old in table:
            raise ParameterError(f"{p}: [piece] {old} is now called {new}")
    unknown = set(table) - SETTINGS - {"files"}
    if unknown:
        raise ParameterError(f"{p}: unknown key(s) {sorted(unknown)} in [piece]; known: {sorted(SETTINGS | {'files'})}")
    files = table.pop("files", [])
    if isinstance(files, str):
        files = [files]
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise ParameterError(f"{p}: [piece] files must be a list of paths")
    for key in PATHS:
        if isinstance(table.get(key), str) and not Path(table[key]).is_absolute():
            table[key] = str(p.parent / table[key])
    if "device" in dream:
        raise ParameterError(f"{p}: [dream] device is now called torch_device (the sound device is [piece] device)")
    checked = {}
    for key, value in dream.items():
        checked[key] = check_value(key, value, f"{p} [dream]")
    try:
        Params().with_changes(**checked)  # together too: e.g. a crossfade longer than half the window
    except ParameterError as exc:
        raise ParameterError(f"{p} [dream]: {exc}") from None
    schedule = None
    if sched is not None:
        extra = set(sched) - {"start", "stop", "fade_s"}
        if extra or "start" not in sched or "stop" not in sched:
            raise ParameterError(f"{p}: [schedule] takes start = \"HH:MM\", stop = \"HH:MM\" and fade_s")
        schedule = DaySchedule(parse_clock(sched["start"], f"{p} [schedule] start"),
                               parse_clock(sched["stop"], f"{p} [schedule] stop"), float(sched.get("fade_s", 10.0)))
    piece = Piece(files=tuple(str(Path(f) if Path(f).is_absolute() else p.parent / f) for f in files),
                  dream=checked, schedule=schedule, web=None if web.get("listen") is None else str(web["listen"]),
                  web_token=web.get("token"), **table)
    check_piece(piece, str(p))
    return piece


# [piece] numbers: (lowest, highest, whole, what it must be). None is allowed where the default is None.
NUMBERS = {
    "feedback": (0.0, 1.0, False, "0..1 (the share of the output fed back)"),
    "evolve_period_s": (1e-3, math.inf, False, "above 0 seconds"),
    "evolve_seed": (0, 2 ** 32 - 1, True, "a whole number 0..4294967295"),
    "samplerate": (8000, 192000, True, "a whole number of Hz, 8000..192000"),
    "blocksize": (0, 8192, True, "0 (let the device choose) to 8192 frames"),
    "budget_s": (0.1, 60.0, False, "0.1 to 60 seconds (how long a dream may take)"),
    "duration": (1e-3, math.inf, False, "a positive, finite number of seconds"),
    "osc_port": (1024, 65535, True, "1024..65535"),
}


def check_piece(piece: Piece, where: str = "loop") -> None:
    """The piece's settings' types and ranges, whether they came from the TOML or the command line."""
    for key, (lo, hi, whole, what) in NUMBERS.items():
        value = getattr(piece, key)
        if value is None and getattr(Piece, key) is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi \
                or (whole and value != int(value)) or value == math.inf:
            raise ParameterError(f"{where}: {key} must be {what}")
    if piece.web is not None or piece.web_token is not None:
        from ...web.link import check_token, parse_listen
        if piece.web is not None:
            parse_listen(piece.web, f"{where}: --web ([web] listen)")
        check_token(piece.web_token, f"{where}: [web] token")
    if not isinstance(piece.evolve, bool):
        raise ParameterError(f"{where}: evolve must be true or false")
    for key in PATHS + ("record_format", "device"):
        if getattr(piece, key) is not None and not isinstance(getattr(piece, key), str):
            raise ParameterError(f"{where}: {key} must be a string")
