"""Dreamer: one model, one view, one objective, ready to dream window after window."""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import soxr
import torch
from torch import nn

from ..params import CEILING_OFF_DB, Params
from ..errors import ParameterError
from ..memory import keep_freed_memory
from .loop import (DreamLoop, Objective, ObjectiveNet, class_scores, eq_bands, octave_sizes, outputs_by_name,
                   script_loop, trace_objective)
from .model import HEARD, LoadedModel, ModelInfo, convert, read_model_info
from .views import SpectrogramView, build_view, fft_size, needed_sample_rate, padded_frames


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ParameterError("--torch-device cuda asked for, but torch sees no CUDA GPU here; use --torch-device cpu")
    return torch.device(name)


def loop_backend(name: str, device: torch.device) -> str:
    """`auto`: the eager loop on the CPU, where it is 5-20% faster than the scripted one (docs/BENCHMARKS.md);
    TorchScript on a GPU, where a scripted loop spares Python between kernel launches (not yet measured)."""
    if name != "auto":
        return name
    return "eager" if device.type == "cpu" else "torchscript"


def ceiling_ratio(ceiling_db: float) -> float:
    """ceiling_db or swell_db as the loop takes it: an amplitude ratio, 0 for no limit (the top of the range)."""
    return 0.0 if ceiling_db >= CEILING_OFF_DB else 10.0 ** (ceiling_db / 20.0)


def _split_weight(part: str, what: str) -> tuple[str, float]:
    """"NAME:0.5" -> ("NAME", 0.5); "NAME" -> ("NAME", 1.0)."""
    if ":" not in part:
        return part, 1.0
    part, weight_text = part.rsplit(":", 1)
    try:
        return part, float(weight_text)
    except ValueError:
        raise ParameterError(f"{what} weight {weight_text!r} is not a number; write NAME:0.5") from None


def parse_objective(params: Params, info: ModelInfo) -> Objective:
    """--layer / --target / --away -> Objective. Layer syntax: NAME, NAME@CHANNEL, heard, or A:0.5,B:1.0.

    Which classes --target/--away name is read per window (see `class_weights`); here only
    whether there are any, since that decides which outputs the traced net returns.
    """
    layers = []
    spec = params.layer
    if spec is None and params.target is None and params.away is None:
        spec = info.dream_layer
        if spec is None:
            raise ParameterError(f"{info.path.name} names no default layer; pick one with --layer "
                                 f"(list them with: streamdream models info {info.path})")
    axes = {layer.name: layer.channel_axis for layer in info.recommended}
    tensors = {name for node in info.proto.graph.node for name in node.output} if info.proto is not None else set()
    heard = 0.0
    for part in (spec.split(",") if spec else []):
        part = part.strip()
        # a tensor name may itself end in ":N" (tf2onnx's "model/conv/Relu:0"): a whole name is a name
        whole = part.rsplit("@", 1)[0] if "@" in part else part
        part, weight = (part, 1.0) if whole in tensors else _split_weight(part, "layer")
        if part == HEARD:
            if not info.labels:
                raise ParameterError(f"--layer {HEARD} pushes the labels the model hears, and {info.path.name} names "
                                     f"none; name a layer instead (streamdream models info {info.path})")
            heard += weight
            continue
        channel = -1
        if "@" in part:
            part, channel_text = part.rsplit("@", 1)
            if not channel_text.isdigit():
                raise ParameterError(f"layer channel {channel_text!r} is not a whole number; write NAME@12")
            channel = int(channel_text)
        layers.append((part, weight, channel, axes.get(part, info.channel_axis)))
    class_weights(params, info, None)  # refuse unknown labels now, not at the first window
    logits = info.label_output if (params.target or params.away or heard) else ""
    return Objective(tuple(layers), logits, info.class_axis, heard)


def class_weights(params: Params, info: ModelInfo, n_classes: int | None) -> np.ndarray:
    """Per-class weight from --target (toward) and --away (away from), e.g. "C4,E4:0.5,G4".

    A chord is several targets; each one's weight scales how hard the dream pushes toward it.
    With `n_classes` None the labels are only checked (the output's size is not known yet).
    """
    weights = np.zeros(n_classes or 1, dtype=np.float32)
    for spec, sign in ((params.target, 1.0), (params.away, -1.0)):
        for part in (spec.split(",") if spec else []):
            label, weight = _split_weight(part.strip(), "target")
            index = info.label_index(label)
            if n_classes is None:
                continue
            if index >= n_classes:
                raise ParameterError(f"class {index} is past the {n_classes} classes of {info.path.name}'s output")
            weights[index] += sign * weight
    return weights


class NormalisedSpectrum(nn.Module):
    """View for the reconstruct baselines: the dreamed variable is the log-magnitude itself."""

    def __init__(self, mean: float, std: float, bins: int):
        super().__init__()
        self.mean, self.std, self.bins = mean, std, bins

    def forward(self, logmag: torch.Tensor) -> torch.Tensor:
        return ((logmag[:, :self.bins] - self.mean) / self.std).unsqueeze(1)


class Dreamer:
    """Dreams (channels, frames) windows at `sample_rate`; all per-window settings come from `params`."""

    def __init__(self, params: Params, sample_rate: int, channels: int, window_frames: int,
                 info: ModelInfo | None = None):
        params.validate()
        keep_freed_memory()  # every step reuses the same big tensors: see memory.py
        self.params = params
        self.sample_rate = sample_rate
        self.channels = channels
        self.window_frames = window_frames
        self._eq_cache: tuple[float, torch.Tensor | None] = (0.0, None)  # (eq_bands, its band matrix)
        self.info = info or read_model_info(params.model, params.view)
        self.view_name = self.info.view
        if self.view_name is None:
            name = self.info.path.name
            if len(self.info.input_shape) != 4:
                raise ParameterError(f"{name} takes a waveform but has no streamdream metadata; describe it once: "
                                     f"streamdream models annotate {self.info.path} OUT.onnx --view waveform --rate HZ")
            raise ParameterError(f"{name} has no streamdream metadata; name its view with "
                                 "--set view=mel|stft|raw-image and its layer with --layer, or describe it once with "
                                 f"streamdream models annotate {self.info.path} OUT.onnx")
        if params.reconstruct != "none" and self.view_name != "stft":
            raise ParameterError("reconstruct needs the stft view; add --set view=stft")
        self.device = pick_device(params.torch_device)
        self.rate = needed_sample_rate(self.view_name, self.info.front, sample_rate)
        self.objective = parse_objective(params, self.info)
        self.view_frames = padded_frames(self.view_name, self._at_view_rate(window_frames))
        self.front = replace(self.info.front, top_db=params.top_db) if params.top_db > 0 else self.info.front
        self.view = build_view(self.view_name, self.front, self.rate, self.info.image_hw, self.info.layout,
                               self.info.model_channels)
        # Mono is dreamed as L = R stereo (see dream_window), so the batch is never one.
        batch = 2 if channels == 1 else channels
        example_wave = torch.zeros(batch, self.view_frames)
        with torch.no_grad():
            example_view = self.view(example_wave)
        self.view_shape = list(example_view.shape)
        self.loaded: LoadedModel = convert(self.info, self.objective.outputs(), [1] + self.view_shape[1:])
        self.n_classes = (self.loaded.output_shapes[self.objective.logits][self.info.class_axis]
                          if self.objective.logits else 0)
        self.loaded.check_channels(self.objective)
        self._build_loop(example_view)

    def warm_up(self, runs: int = 2) -> "Dreamer":
        """Dream a noise window a few times before audio starts: TorchScript optimises on its first runs."""
        noise = (0.05 * np.random.default_rng(0).standard_normal((self.channels, self.window_frames)))
        for _ in range(runs):
            self.dream_window(noise.astype(np.float32), 0)
        return self

    def _at_view_rate(self, frames: int) -> int:
        return frames if self.rate == self.sample_rate else int(round(frames * self.rate / self.sample_rate))

    def _build_loop(self, example_view: torch.Tensor) -> None:
        net = self.loaded.module.to(self.device)
        # Channels-last activations: torch's CPU convolutions, max pooling and their gradients run them
        # 1.5-2.5x faster than channels-first (docs/BENCHMARKS.md). The gradient then differs from
        # channels-first by about 1e-3 (relative): float32 rounding settles max-pool near-ties the other
        # way, as it does between two inputs 1e-3 apart. A GPU keeps channels-first (not measured there).
        channels_last = self.device.type == "cpu" and example_view.dim() == 4
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
        view = self.view
        if self.params.reconstruct != "none":
            view = NormalisedSpectrum(self.info.front.mean, self.info.front.std, self.view.bins)
        view = view.to(self.device)
        if loop_backend(self.params.backend, self.device) == "torchscript":
            objective_net = trace_objective(net, self.objective, example_view.to(self.device),
                                            *self.objective_inputs(self.params))
            self.loop = script_loop(DreamLoop(view, objective_net, self._shape_fft(), channels_last).to(self.device))
        else:
            self.loop = DreamLoop(view, ObjectiveNet(net, self.objective), self._shape_fft(),
                                  channels_last).to(self.device)

    def _shape_fft(self) -> int:
        """FFT size for shaping the update: the power of two at or above 40 ms (2048 points at 44.1 and 48 kHz)."""
        return fft_size(round(0.04 * self.rate))

    def target_weights(self, p: Params, x: torch.Tensor | None = None) -> torch.Tensor:
        """The class weights `p` asks for (--target/--away), as the objective takes them per window.
        Given the window `x`: with `keep` the label the model hears most in it (a target aside) is pushed
        too, and with `--layer heard` every label by its probability in it."""
        return self.objective_inputs(p, x)[0]

    def held_others(self, p: Params, x: torch.Tensor | None = None) -> torch.Tensor:
        """With a target and `hold_others`, given the window `x`: the model's probability for each label but
        the named ones (--target, --away) in it, renormalised over those labels and times the hold weight;
        0 for the named labels, and everywhere for a multi-label model (its keys have no shared
        distribution to hold) or without the window."""
        return self.objective_inputs(p, x)[1]

    def objective_inputs(self, p: Params, x: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(target_weights, held_others): the model hears the window once for both."""
        if not self.objective.logits:
            return torch.zeros(1, device=self.device), torch.zeros(1, device=self.device)
        weights = class_weights(p, self.info, self.n_classes)
        held = np.zeros_like(weights)
        pushed = np.any(weights > 0)
        keep = p.keep > 0 and pushed
        hold = p.hold_others > 0 and pushed and not self.info.multi_label
        if x is not None and (keep or hold or self.objective.heard > 0):
            heard = self.heard(x)
            if hold:
                others = np.where(weights == 0, heard, 0.0)
                held = (p.hold_others * others / max(float(others.sum()), 1e-12)).astype(np.float32)
            if keep:
                weights[int(np.argmax(np.where(weights > 0, -np.inf, heard)))] += p.keep
            weights += self.objective.heard * heard
        return torch.from_numpy(weights).to(self.device), torch.from_numpy(held).to(self.device)

    def heard(self, x: torch.Tensor) -> np.ndarray:
        """The model's probability for each class in the window x (channels, samples): softmax of its scores,
        sigmoid for a multi-label model (the pitch model's keys)."""
        with torch.no_grad():
            by_name = outputs_by_name(self.loaded.module, self.view(x), self.objective.outputs())
            scores = class_scores(by_name[self.objective.logits], self.objective.class_axis)
            probs = torch.sigmoid(scores) if self.info.multi_label else torch.softmax(scores, dim=0)
        return probs.cpu().numpy().astype(np.float32)

    def _eq(self, p: Params) -> torch.Tensor:
        """eq_bands as the loop takes it: the band matrix for the shaping FFT, or empty when off."""
        if p.eq_bands <= 0.0:
            return torch.zeros(0, device=self.device)
        if self._eq_cache[0] != p.eq_bands:
            self._eq_cache = (p.eq_bands, eq_bands(self._shape_fft() // 2 + 1, p.eq_bands).to(self.device))
        return self._eq_cache[1]

    def _sustain_frames(self, p: Params) -> int:
        """sustain_ms in shaping frames (a quarter of the shaping FFT: 10.7 ms at 48 kHz) either side; 0 unless
        a target is pushed: without one it cost the ear's own label (lab/DREAMS.md), with one it pays."""
        if not self.objective.logits or not np.any(class_weights(p, self.info, self.n_classes) > 0):
            return 0
        return int(round(p.sustain_ms / 1000.0 * self.rate / (self._shape_fft() // 4)))

    def _sizes(self, p: Params) -> list[list[int]]:
        return octave_sizes(self.view_shape, p.octaves, p.octave_scale, self.view_name == "raw-image")

    def _shifts(self, p: Params, index: int, units_per_ms: float) -> list[int]:
        """Jitter per step, from the seed and the window index so every window is reproducible."""
        rng = np.random.default_rng([p.seed, index])
        limit = int(p.jitter_ms * units_per_ms)
        count = p.steps * p.octaves
        if limit <= 0:
            return [0] * count
        return rng.integers(-limit, limit + 1, size=count).tolist()

    def _transforms(self, p: Params, index: int, rms: float, x: torch.Tensor) -> tuple[list[list[float]], torch.Tensor]:
        """Expectation over transformation: one random gain, EQ tilt and noise per step, scaled by p.eot.

        At eot = 1: gain within +-6 dB, a first-order tilt of up to +5 / -14 dB at the top of the
        band, white noise 20-40 dB under the window's RMS. Seeded like the jitter.
        """
        if p.eot <= 0.0:
            return [], x.new_zeros(0)
        rng = np.random.default_rng([p.seed, index, 1])
        count = p.steps * p.octaves
        gains = 10 ** (p.eot * rng.uniform(-6, 6, count) / 20)
        tilts = p.eot * rng.uniform(-0.4, 0.4, count)
        levels = p.eot * rms * 10 ** (-rng.uniform(20, 40, count) / 20)
        noise_shifts = rng.integers(0, x.shape[-1], count)
        noise = torch.from_numpy(rng.standard_normal(tuple(x.shape)).astype(np.float32)).to(x.device)
        return [[float(g), float(t), float(v), float(n)] for g, t, v, n in zip(gains, tilts, levels, noise_shifts)], noise

    def dream_window(self, window: np.ndarray, index: int = 0, params: Params | None = None) -> np.ndarray | None:
        """window: (channels, window_frames) float32 -> dreamed window, or None if the dream went non-finite.

        `params` may change the cheap per-window knobs (steps, step size, octaves, jitter, seed)
        without rebuilding; model, view and objective are fixed at construction.
        """
        p = params or self.params
        if self.channels == 1:
            # The live engine is stereo and dreams a mono input as two equal channels; dreaming mono the same
            # way makes render of a mono file equal live to the sample (a batch of one sums in another order)
            # and serves models whose input is stereo.
            dreamed = self._dream_window(np.repeat(window, 2, axis=0), index, p)
            return None if dreamed is None else dreamed[:1]
        return self._dream_window(window, index, p)

    def _dream_window(self, window: np.ndarray, index: int, p: Params) -> np.ndarray | None:
        dry = window
        rms = float(np.sqrt(np.mean(np.square(dry, dtype=np.float64))))
        if rms == 0.0 or p.step_size == 0.0:
            return dry.copy()  # silence has nothing to dream on, and the step is relative to the level
        wave = dry if self.rate == self.sample_rate else soxr.resample(dry.T, self.sample_rate, self.rate).T
        frames = wave.shape[1]
        padded = np.zeros((wave.shape[0], self.view_frames), dtype=np.float32)
        padded[:, :frames] = wave[:, :self.view_frames]
        step = p.step_size * rms
        with torch.no_grad():
            x = torch.from_numpy(padded).to(self.device)
        if self.params.reconstruct != "none":
            dreamed = self._dream_spectrum(x, p, index)
        else:
            shifts = self._shifts(p, index, self.rate / 1000.0)
            transforms, noise = self._transforms(p, index, rms, x)
            dreamed = self.loop(x, p.steps, step, self._sizes(p), shifts, *self.objective_inputs(p, x), p.shape,
                                self._sustain_frames(p), transforms, noise, self._eq(p), p.eq_depth_db,
                                ceiling_ratio(p.ceiling_db), ceiling_ratio(p.swell_db))
        delta = (dreamed.detach().cpu().numpy()[:, :frames] - padded[:, :frames]).astype(np.float32)
        if self.rate != self.sample_rate:
            delta = soxr.resample(delta.T, self.rate, self.sample_rate).T
        out = np.zeros_like(dry)
        n = min(delta.shape[1], dry.shape[1])
        out[:, :n] = delta[:, :n]
        out += dry
        if not np.all(np.isfinite(out)):
            return None
        return out

    def _dream_spectrum(self, x: torch.Tensor, p: Params, index: int) -> torch.Tensor:
        """The STFT baselines: dream the log-magnitude, then resynthesise with the old phase or Griffin-Lim."""
        view: SpectrogramView = self.view.to(self.device)
        spec = torch.stft(x, view.n_fft, view.hop_length, view.win_length, view.window, center=True,
                          pad_mode="constant", return_complex=True)
        offset = self.info.front.log_offset
        logmag = torch.log(spec.abs() + offset)
        frames_per_ms = 1000.0 / self.info.front.hop_ms / 1000.0
        # steps are relative to the spectrum's own spread here, not the waveform level
        dreamed_log = self.loop(logmag, p.steps, p.step_size * float(logmag.std()), self._sizes(p),
                                self._shifts(p, index, frames_per_ms), *self.objective_inputs(p), 0.0, 0, [],
                                logmag.new_zeros(0), logmag.new_zeros(0), 0.0, 0.0, 0.0)
        mag = torch.clamp(torch.exp(dreamed_log) - offset, min=0.0)
        if self.params.reconstruct == "phase":
            phase = torch.angle(spec)
        else:
            phase = griffin_lim_phase(mag, view, x.shape[1], seed=p.seed + index)
        return torch.istft(torch.polar(mag, phase), view.n_fft, view.hop_length, view.win_length, view.window,
                           center=True, length=x.shape[1])


def griffin_lim_phase(mag: torch.Tensor, view: SpectrogramView, frames: int, seed: int, iterations: int = 32) -> torch.Tensor:
    """Phase estimate from magnitudes alone (Griffin & Lim 1984), starting from random phase."""
    gen = torch.Generator().manual_seed(seed)
    phase = (torch.rand(mag.shape, generator=gen) * 2 * torch.pi).to(mag.device)
    for _ in range(iterations):
        wave = torch.istft(torch.polar(mag, phase), view.n_fft, view.hop_length, view.win_length, view.window,
                           center=True, length=frames)
        phase = torch.angle(torch.stft(wave, view.n_fft, view.hop_length, view.win_length, view.window,
                                       center=True, pad_mode="constant", return_complex=True))
    return phase
