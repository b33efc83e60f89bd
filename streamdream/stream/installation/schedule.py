"""Opening hours: the piece plays between a start and a stop time of day, fading in and out."""
from __future__ import annotations

from dataclasses import dataclass, field

from ...errors import ParameterError


def parse_clock(text: str, where: str) -> int:
    try:
        hours, minutes = (int(x) for x in str(text).split(":"))
        if not (0 <= hours < 24 and 0 <= minutes < 60):
            raise ValueError
    except ValueError:
        raise ParameterError(f"{where} must be a time of day like \"09:30\", not {text!r}") from None
    return hours * 3600 + minutes * 60


@dataclass
class DaySchedule:
    """Plays between `start` and `stop` (seconds after midnight, local time; stop < start spans midnight),
    fading in and out over `fade_s`; silent (the dream keeps running) outside those hours."""
    start: int
    stop: int
    fade_s: float = 10.0
    playing: bool | None = field(default=None, init=False, compare=False)  # as of the last tick; None before

    def level(self, seconds_of_day: float) -> float:
        day = 86400.0
        since_start = (seconds_of_day - self.start) % day
        open_for = (self.stop - self.start) % day or day
        if since_start >= open_for:
            return 0.0
        to_stop = open_for - since_start
        edge = min(since_start, to_stop)
        return 1.0 if self.fade_s <= 0 else float(min(1.0, edge / self.fade_s))

    def tick(self, engine, seconds: float, say, now=None) -> None:
        import time as _time
        t = _time.localtime() if now is None else now
        level = self.level(t.tm_hour * 3600 + t.tm_min * 60 + t.tm_sec)
        engine.controls.set_level(level)  # on top of the gain a knob, the page or OSC set, which it keeps
        opened = level > 0.0
        if opened != self.playing:
            self.playing = opened
            say("schedule: " + ("playing (fading in)" if opened else "outside playing hours: silent"))
