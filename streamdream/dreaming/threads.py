"""How many torch threads each dreaming process uses."""
from __future__ import annotations

import os


def threads_per_worker(jobs: int = 1) -> int:
    """Torch threads for each of ``jobs`` processes dreaming at once, so that together they do not
    oversubscribe the machine's cores."""
    return max(1, (os.cpu_count() or 1) // max(1, jobs))
