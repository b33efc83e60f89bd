"""The gradient loop: DeepDream on a waveform, one window at a time.

Per octave (coarse first), per step: roll the waveform by a random jitter,
compute view -> (octave resize) -> CNN -> objective, take the gradient with
respect to the waveform, normalise it by its mean absolute value, unroll it and
step. With the TorchScript backend the CNN is traced and this loop is scripted,
so a whole window runs without returning to Python.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

# Gradient normalisation divides by mean |g|; silence and DC give g == 0, and
# this floor keeps 0 / 0 from becoming NaN (the step is then simply zero).
GRAD_FLOOR = 1e-20
# Shaping in time: the change is held back where the input is more than this far (10 dB, as an amplitude
# ratio) under its loudest moment nearby. Measured against 1.0 and 0.1 on the eval clips (lab/DREAMS.md).
PRE_ECHO_KNEE = 10 ** (-10 / 20)


@dataclass(frozen=True)
class Objective:
    """What to amplify.

    Layers are (ONNX tensor, weight, channel or -1 for all, the axis the channel is on).
    Class scores come from `logits` when it is set: the dream pushes up the weighted sum of
    the classes' scores, each averaged over batch and frames (any axis but `class_axis`).
    Which classes and how much is a per-window tensor, so a held chord can change every
    window without rebuilding anything. `heard` (from `--layer heard`) adds, per window, each
    label at this weight times the probability the model gives it in the input: more of
    what the model hears there, in proportion (Dreamer.target_weights).

    `held` (Dreamer.held_others, from `hold_others`) is, per window, the model's probability for
    every label but the targets in the input, times the hold weight (0 for the targets). The
    objective then also rewards the dreamed window for keeping that distribution among the other
    labels (cross-entropy over the non-target labels' softmax): the target may grow, and what else
    the model hears in the music keeps its order instead of a neighbour of the target taking the
    music's place (lab/DREAMS.md).
    """

    layers: tuple = ()
    logits: str = ""          # tensor holding the class scores, "" when no class is pushed
    class_axis: int = -1
    heard: float = 0.0

    def outputs(self) -> list[str]:
        names = [name for name, _, _, _ in self.layers]
        if self.logits and self.logits not in names:
            names.append(self.logits)
        return names


def outputs_by_name(net: nn.Module, view: torch.Tensor, names: List[str]) -> Dict[str, torch.Tensor]:
    """The CNN's outputs for `view`, keyed by the tensor names it was converted to return."""
    outs = net(view)
    if not isinstance(outs, (tuple, list)):
        outs = (outs,)
    return dict(zip(names, outs))


def class_scores(logits: torch.Tensor, class_axis: int) -> torch.Tensor:
    """One score per class, averaged over batch and frames (every axis but `class_axis`)."""
    logits = logits.movedim(class_axis, -1)
    return logits.reshape(-1, logits.shape[-1]).mean(0)


class ObjectiveNet(nn.Module):
    """(CNN input, class weights) -> scalar objective. Built per objective, then traced."""

    def __init__(self, net: nn.Module, objective: Objective):
        super().__init__()
        self.net = net
        self.objective = objective
        self.names = objective.outputs()

    def forward(self, view: torch.Tensor, class_weights: torch.Tensor,
                held: Optional[torch.Tensor] = None) -> torch.Tensor:
        by_name = outputs_by_name(self.net, view, self.names)
        total = view.new_zeros(())
        for name, weight, channel, axis in self.objective.layers:
            act = by_name[name]
            if channel >= 0:
                act = act.select(axis, channel)
            total = total + weight * act.pow(2).mean()
        if self.objective.logits:
            scores = class_scores(by_name[self.objective.logits], self.objective.class_axis)
            total = total + (scores * class_weights).sum()
            if held is not None:
                total = total + held_log_likelihood(scores, held)
        return total


def held_log_likelihood(scores: torch.Tensor, held: torch.Tensor) -> torch.Tensor:
    """Sum over the held labels of held * log(their softmax now, among themselves): highest when they keep
    the proportions they had. Labels held at 0 (the targets) are left out of the softmax, so the target's
    growth alone costs nothing; with nothing held this is 0 (a finite mask, not -inf, keeps 0 * log finite)."""
    log_p = torch.log_softmax(scores.masked_fill(held <= 0, -1e4), 0)
    return (held * log_p).sum()


class DreamLoop(nn.Module):
    """waveform (or spectrogram, for the reconstruct baselines) -> dreamed waveform, same shape.

    `shape` > 0 shapes every step by the input's own spectrum: the gradient is taken to the
    STFT domain (`shape_fft` points, hop a quarter of that), each cell is weighted by
    (input magnitude / its frame's loudest input cell) ** shape, and the result is taken
    back. The change then lives where the music already has energy, in proportion to it,
    instead of where the view happens to be most sensitive (quiet, high bands); `time_weights`
    does the same in time, against the pre-echo a 43-ms frame would leave before each attack.
    `sustain` > 0 takes the weights from the input's spectrum averaged over that many shaping
    frames either side (`shaping_weights`), so the change can hold a colour between transients.
    `held` goes to the objective (ObjectiveNet: `hold_others`).

    `eq` (bins, bands), from `eq_bands`, not empty: the step may only re-EQ the input. The gradient
    becomes a gain per shaping cell, Re(conj(X) G) (the objective's slope with respect to a real gain
    on the input's own STFT cell X, up to a constant), averaged within smooth log-spaced bands. These
    band gains add up over the steps, each held within +-`eq_depth_db`, and the dream is the input
    plus its own spectrum times that gain field spread back over frequency. It then never adds a
    frequency or a phase the music does not have: a dynamic EQ the model plays, no deeper than an EQ
    a performer would set (unbounded, on the demo clip it cut the mids by 16 dB: lab/DREAMS.md).

    `ceiling` > 0 (an amplitude ratio, from `ceiling_db`): after every step the change so far is projected so
    that in each shaping cell its magnitude is at most `ceiling` times the input's there. The change may then
    colour, raise or cancel what the music has in a cell, but not cover it; the steps that follow spend
    themselves in the cells with room left (projected gradient ascent). It acts on the free change only: the
    re-EQ's change is bounded by `eq_depth_db` already.

    `swell` > 0 (an amplitude ratio, from `swell_db`): once, after the last step, each shaping frame of the change
    is scaled so that its energy is at most `swell` times the input's in that frame. Every frame is shaped
    relative to its own loudest cell, so without it a quiet moment (a reverb tail, the gap between hits, where
    `sustain` holds the colour) takes as large a change, relative to itself, as a loud one, and swells far over
    what is left of the music (lab/DREAMS.md). Once, not after every step: it costs one STFT per window, and
    measured as well as the per-step projection, which cost a fifth more time.

    `transforms` (expectation over transformation, one draw per step): per step [gain,
    tilt, noise level, noise shift]; the view then hears gain * (x + tilt * first
    difference of x) + level * (rolled `noise`), so only changes that survive a different
    level, a brighter or duller EQ and some noise keep growing. Empty = off.
    """

    def __init__(self, view: nn.Module, objective_net: nn.Module, shape_fft: int = 2048, channels_last: bool = False):
        super().__init__()
        self.view = view
        self.objective_net = objective_net
        self.channels_last = channels_last  # hand the CNN its input channels-last (a CNN converted to match)
        self.grad_floor = GRAD_FLOOR
        self.pre_echo_knee = PRE_ECHO_KNEE
        self.shape_fft = shape_fft
        self.shape_hop = shape_fft // 4   # overlap_add relies on a quarter-frame hop
        self.register_buffer("shape_window", torch.hann_window(shape_fft, periodic=True))

    def frames_spectrum(self, x: torch.Tensor) -> torch.Tensor:
        """(channels, samples) -> (channels, frames, bins): torch.stft's (center=True, zero padding), in the
        layout the gradient comes back from; `overlap_add` is its inverse."""
        half = self.shape_fft // 2
        cut = F.pad(x, [half, half]).unfold(-1, self.shape_fft, self.shape_hop)
        return torch.fft.rfft(cut * self.shape_window)

    def overlap_add(self, spec: torch.Tensor, length: int) -> torch.Tensor:
        """torch.istft of `frames_spectrum`'s layout, written out because the hop is a quarter frame:
        four shifted adds instead of a general overlap-add, and the window envelope, which depends
        only on the length, from the same four adds."""
        frames = torch.fft.irfft(spec, n=self.shape_fft) * self.shape_window
        count = frames.shape[1]
        parts = frames.reshape(frames.shape[0], count, 4, self.shape_hop)
        summed = frames.new_zeros(frames.shape[0], count + 3, self.shape_hop)
        squares = self.shape_window.square().reshape(4, self.shape_hop)
        envelope = frames.new_zeros(count + 3, self.shape_hop)
        for q in range(4):
            summed[:, q:q + count] += parts[:, :, q]
            envelope[q:q + count] += squares[q]
        half = self.shape_fft // 2
        return (summed.flatten(1) / envelope.flatten())[:, half:half + length]

    def shaping_weights(self, mag: torch.Tensor, shape: float, sustain: int = 0) -> torch.Tensor:
        """Per-cell weights in [0, 1] from the input's magnitude spectrum (channels, frames, bins, as
        `frames_spectrum` lays it out). With `sustain` > 0 frames, from that magnitude averaged over that many
        frames either side: a colour may then hold through a note's decay and the gaps between hits instead of
        starting and stopping with every transient."""
        if sustain > 0:
            span = 2 * sustain + 1
            mag = F.avg_pool1d(mag.transpose(1, 2), span, 1, sustain, count_include_pad=False).transpose(1, 2)
        peak = mag.amax(dim=2, keepdim=True)
        return (mag / (peak + self.grad_floor)).pow(shape)

    def time_weights(self, x: torch.Tensor, shape: float) -> torch.Tensor:
        """Per-sample weights in [0, 1] (channels, samples): 1 unless the input's 5-ms level is more than
        10 dB under its loudest within half a shaping frame either side, then in proportion, to the power
        `shape`. A shaping frame (43 ms) blurs time, so without these a change meant for an attack also
        lands in the quieter moment just before it (pre-echo: on a piano, bursts louder than the attack).
        5-ms blocks keep a held note's level steady, so held notes are not modulated."""
        hop = self.shape_hop // 2
        n = x.shape[-1]
        level = F.pad(x, [0, (-n) % hop]).square().reshape(x.shape[0], -1, hop).mean(-1).sqrt()
        span = self.shape_fft // hop
        peak = F.max_pool1d(level.unsqueeze(1), span + 1, 1, span // 2).squeeze(1)
        weights = torch.clamp(level / (self.pre_echo_knee * peak + self.grad_floor), max=1.0).pow(shape)
        return F.interpolate(weights.unsqueeze(1), scale_factor=float(hop), mode="linear",
                             align_corners=False).squeeze(1)[:, :n]

    def shaped(self, g: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        return self.overlap_add(self.frames_spectrum(g) * weights, g.shape[-1])

    def eq_gains(self, g: torch.Tensor, spectrum: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
        """The gradient g as the objective's slope per band and frame of the input's spectrum (channels, frames, bands)."""
        return (spectrum.conj() * self.frames_spectrum(g)).real @ pool

    def eq_change(self, spectrum: torch.Tensor, gains: torch.Tensor, spread: torch.Tensor, length: int) -> torch.Tensor:
        """The waveform change that gains (channels, frames, bands; 0 = as it is) make to the input's spectrum."""
        return self.overlap_add(spectrum * (gains @ spread), length)

    def forward(self, x: torch.Tensor, steps: int, step_size: float, sizes: List[List[int]],
                shifts: List[int], class_weights: torch.Tensor, held: torch.Tensor, shape: float, sustain: int,
                transforms: List[List[float]], noise: torch.Tensor, eq: torch.Tensor,
                eq_depth_db: float, ceiling: float, swell: float) -> torch.Tensor:
        x = x.detach()
        dry = x
        as_eq = eq.numel() > 0
        shaping = shape > 0.0 and not as_eq
        limited = ceiling > 0.0 and not as_eq
        swelling = swell > 0.0 and not as_eq
        # the input's spectrum, taken once for all that read it: the re-EQ, the shaping, the ceiling, the swell
        spectrum = self.frames_spectrum(x) if as_eq or shaping or limited or swelling else x.new_zeros(0)
        magnitude = spectrum.abs()
        weights = self.shaping_weights(magnitude, shape, sustain) if shaping else x.new_zeros(0)
        pool = eq / eq.sum(0, keepdim=True).clamp(min=1e-6)  # a band's mean gain; a band holding no bin stays 0
        spread = eq.t()
        # the EQ so far, a gain - 1 per band and frame, held within +-eq_depth_db
        field = x.new_zeros(spectrum.shape[0], spectrum.shape[1], eq.shape[1]) if as_eq else x.new_zeros(0)
        deepest_cut, highest_lift = 10.0 ** (-eq_depth_db / 20.0) - 1.0, 10.0 ** (eq_depth_db / 20.0) - 1.0
        in_time = self.time_weights(x, shape) if shape > 0.0 else x.new_zeros(0)
        room = ceiling * magnitude if limited else x.new_zeros(0)
        k = 0
        for size in sizes:
            for _ in range(steps):
                shift = shifts[k]
                k += 1
                rolled = torch.roll(x, shift, -1).detach().requires_grad_(True)
                heard = rolled
                if len(transforms) > 0:
                    gain, tilt, level, noise_shift = transforms[k - 1]
                    heard = gain * (rolled + tilt * (rolled - torch.roll(rolled, 1, -1))) \
                        + level * torch.roll(noise, int(noise_shift), -1)
                v = self.view(heard)
                if v.dim() == 4 and (v.shape[2] != size[0] or v.shape[3] != size[1]):
                    v = F.interpolate(v, size=size, mode="bilinear", align_corners=False)
                if self.channels_last and v.dim() == 4:
                    v = v.contiguous(memory_format=torch.channels_last)
                objective = self.objective_net(v, class_weights, held)
                grads = torch.autograd.grad([objective], [rolled])
                g = grads[0]
                if g is None:
                    g = torch.zeros_like(x)
                g = torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)
                g = torch.roll(g, -shift, -1)
                if as_eq:
                    gains = self.eq_gains(g, spectrum, pool)
                    # scaled as the free step is, so that the change these gains alone make has mean |.| 1
                    scale = self.eq_change(spectrum, gains, spread, x.shape[-1]).abs().mean() + self.grad_floor
                    field = torch.clamp(field + step_size * gains / scale, deepest_cut, highest_lift)
                    change = self.eq_change(spectrum, field, spread, x.shape[-1])
                    x = dry + (change * in_time if shape > 0.0 else change)
                    continue
                if shape > 0.0:
                    g = self.shaped(g, weights)
                g = g / (g.abs().mean() + self.grad_floor)
                if shape > 0.0:
                    # after the normalisation: the time weights take change away, never move it elsewhere
                    # (weighted before it, a lone click in silence would get the whole window's step and be rewritten)
                    g = g * in_time
                x = x + step_size * g
                if limited:
                    x = dry + self.held_under(x - dry, room, False)
        if swelling:
            x = dry + self.held_under(x - dry, swell * frame_level(magnitude), True)
        return x

    def held_under(self, change: torch.Tensor, room: torch.Tensor, whole_frames: bool) -> torch.Tensor:
        """`change` scaled so that its magnitude is at most `room` in each shaping cell (ceiling_db), or with
        `whole_frames` in each frame, all its cells together (swell_db: room is then (channels, frames, 1));
        the phase is kept."""
        spec = self.frames_spectrum(change)
        size = frame_level(spec.abs()) if whole_frames else spec.abs()
        return self.overlap_add(spec * torch.clamp(room / (size + self.grad_floor), max=1.0), change.shape[-1])


def frame_level(magnitude: torch.Tensor) -> torch.Tensor:
    """(channels, frames, bins) magnitudes -> (channels, frames, 1): each frame's root-sum-square, its level."""
    return magnitude.square().sum(2, keepdim=True).sqrt()


def eq_bands(bins: int, per_octave: float) -> torch.Tensor:
    """(bins, bands) triangular bands, `per_octave` to the octave on a log axis of bin index from bin 2 up to
    the last bin (at 48 kHz and 2048 points: 47 Hz to 24 kHz, 9 octaves); every bin's weights sum to 1, so a
    gain per band spread back is a smooth curve over frequency. Bins under the lowest centre follow it."""
    lo, hi = 1.0, math.log2(bins - 1)
    count = max(2, int(round((hi - lo) * per_octave)) + 1)
    centres = torch.linspace(lo, hi, count, dtype=torch.float64)
    place = torch.log2(torch.arange(bins, dtype=torch.float64).clamp(min=1.0)).clamp(lo, hi)
    weights = (1.0 - (place[:, None] - centres[None, :]).abs() / (centres[1] - centres[0])).clamp(min=0.0)
    return (weights / weights.sum(1, keepdim=True)).float()


def octave_sizes(view_shape: list[int], octaves: int, scale: float, image: bool, min_size: int = 8) -> list[list[int]]:
    """CNN input (H, W) per octave, coarsest first. Audio views compress time only; images scale both axes.

    A waveform input has no octaves to resize (squeezing samples would shift pitch): every
    octave then runs at the input's own size."""
    if len(view_shape) != 4:
        return [[0, 0] for _ in range(octaves)]
    _, _, h, w = view_shape
    sizes = []
    for o in reversed(range(octaves)):
        factor = scale ** o
        new_w = max(min_size, round(w / factor))
        new_h = max(min_size, round(h / factor)) if image else h
        sizes.append([int(new_h), int(new_w)])
    return sizes


def trace_objective(net: nn.Module, objective: Objective, example: torch.Tensor,
                    class_weights: torch.Tensor, held: torch.Tensor) -> nn.Module:
    """Trace the CNN + objective for the TorchScript loop; shapes stay dynamic along H and W."""
    wrapped = ObjectiveNet(net, objective).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about Python values in onnx2torch ops
        return torch.jit.trace(wrapped, (example, class_weights, held), check_trace=False)


def script_loop(loop: DreamLoop) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        # torch marks TorchScript as deprecated; it is still what lets the loop run without Python.
        warnings.filterwarnings("ignore", message=r".*torch\.jit\.(script|trace).* is deprecated")
        return torch.jit.script(loop)
