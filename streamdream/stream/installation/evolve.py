"""A piece that evolves over days: a slow, seeded walk of layer, target and depth."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ...params import Params


@dataclass
class Evolver:
    """Every `period_s` of audio the dream moves one step: a new layer or target now and then, depth
    (steps, step size) in a slow random walk. The walk is a function of (seed, step) only, so a piece
    run twice with one seed evolves the same way. Steps walk up to twice the piece's own (a dream's cost
    grows with its steps, so a piece whose windows fit the budget at the start keeps fitting it)."""
    base: Params
    layers: list[str]
    labels: list[str]
    seed: int = 0
    period_s: float = 120.0
    step: int = -1

    # where the walk was last asked for: (step, its random generator, steps, step size, layer, target). A
    # piece asks for step after step, so each is one move on from the last, not a walk from the start
    # (weeks into a piece that would be tens of thousands of moves every period).
    _walk: tuple | None = field(default=None, init=False, repr=False, compare=False)

    def params_at(self, step: int) -> Params:
        params = self.base
        if self._walk is None or self._walk[0] > step:
            self._walk = (0, np.random.default_rng([self.seed, 0]), float(params.steps), float(params.step_size),
                          params.layer, params.target)
        done, rng, steps, size, layer, target = self._walk
        most_steps = 2 * params.steps
        for _ in range(step - done):
            steps = min(max(steps * math.exp(rng.normal(0, 0.25)), 1.0), most_steps)
            size = min(max(size * math.exp(rng.normal(0, 0.25)), 0.005), 0.3)
            if self.layers and rng.random() < 0.25:
                layer = self.layers[rng.integers(len(self.layers))]
            if self.labels and rng.random() < 0.15:
                target = None if rng.random() < 0.3 else self.labels[rng.integers(len(self.labels))]
        self._walk = (step, rng, steps, size, layer, target)
        return params.with_changes(steps=int(round(steps)), step_size=size, layer=layer, target=target)

    def tick(self, engine, seconds: float, say) -> None:
        step = int(seconds // self.period_s)
        if step == self.step:
            return
        self.step = step
        if step == 0:
            return
        p = self.params_at(step)
        say(f"evolve step {step}: layer {p.layer or 'default'}, target {p.target or 'none'}, "
            f"steps {p.steps}, step size {p.step_size:.3f}")
        current = engine.params  # keep what a performer set by hand for the instant controls
        engine.set_params(p.with_changes(intensity=current.intensity, mix=current.mix, gain_db=current.gain_db),
                          instant=False)
