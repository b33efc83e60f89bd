"""`streamdream loop` (installation mode) and `streamdream service` (a piece as a systemd service).

A piece's settings come from its TOML (`--config`) and the command line, merged once into one Piece:
the loop parser gives no defaults, so what is in the namespace was given, and it wins over the file.
"""
from __future__ import annotations

import argparse

from ..errors import ParameterError
from .dream import params_from_args
from .live import add_run_options, live_options
from .parser import Parser, given_only


def piece_from_args(a: argparse.Namespace):
    """The piece file (if --config) with the command line's options on top, the dream's Params, and the run
    options with their defaults filled in: (piece, params, run)."""
    from ..stream.installation.piece import Piece, check_piece, load_piece

    given = {key: value for key, value in vars(a).items() if key not in ("func", "run_defaults", "_argv")}
    piece = (load_piece(a.config) if "config" in given else Piece()).with_options(given)
    check_piece(piece, "loop")
    if {"input_device", "input_channels", "no_monitor"} & set(given):
        raise ParameterError("loop plays files, not a capture device: drop --input-device/--input-channels/--no-monitor")
    if not piece.files:
        raise ParameterError("loop needs audio files or a playlist (or a --config whose [piece] lists files)")
    run = argparse.Namespace(**{**a.run_defaults, **given})  # the run options not given: their defaults
    return piece, params_from_args(run, piece.dream), run


def cmd_loop(a: argparse.Namespace) -> int:
    from rich.console import Console

    from ..stream.installation.run import run_loop, setup_log
    from ..stream.live import Say
    from ..web.link import handed_down_token

    piece, params, run = piece_from_args(a)
    console = Console(stderr=True)
    if run.watchdog:
        from ..stream.installation.watchdog import run_watchdog
        setup_log(piece.log)
        # the child runs the same command without the watchdog (however the option was abbreviated)
        argv = [x for x in a._argv if not (x.startswith("--wa") and "--watchdog".startswith(x))]
        if piece.web is not None and piece.web_token is None:
            from ..web.link import hand_down_token
            hand_down_token(piece.web, console)  # one token for every engine the watchdog starts
        return run_watchdog(argv, piece.stats, {"--record": piece.record, "--record-input": piece.record_input},
                            Say(console))
    budget = piece.budget_s if piece.budget_s is not None else params.window_s  # read ahead: late is unlikely
    opts = live_options(run, output_device=run.output_device or piece.device or "auto", input_device=None,
                        input_channels=None, samplerate=piece.samplerate, blocksize=piece.blocksize,
                        duration=piece.duration, stats_path=piece.stats, record_path=piece.record,
                        record_format=piece.record_format, record_input_path=piece.record_input, budget_s=budget,
                        osc_port=piece.osc_port, web=piece.web, web_token=piece.web_token or handed_down_token(),
                        monitor=True)
    run_loop(piece, params, opts, console)
    return 0


def cmd_service(a: argparse.Namespace) -> int:
    from ..stream.installation.service import install_service, service_unit

    if a.service_command == "unit":
        print(service_unit(a.piece), end="")
        return 0
    path = install_service(a.piece, a.folder)
    user = "--user " if not a.folder else ""
    print(f"wrote {path}\nstart it now and at every boot: systemctl {user}daemon-reload && "
          f"systemctl {user}enable --now {path.stem}")
    return 0


def add_parser(sub) -> None:
    lp = sub.add_parser("loop", help="installation mode: loop files or a playlist through the dream for days",
                        usage="%(prog)s [FILE|PLAYLIST ...] [--config TOML] [options]")
    lp.add_argument("files", nargs="*", metavar="FILE|PLAYLIST",
                    help="audio files and/or .m3u/.txt playlists, played back to back and looped")
    g = lp.add_argument_group("piece (each also a [piece] key of --config's TOML)")
    g.add_argument("--config", metavar="TOML", help="the piece file: [piece], [dream], [schedule], [web]; options win")
    g.add_argument("--feedback", type=float, default=0.0,
                   help="share 0..1 of the output fed back into the input (guarded against runaway)")
    g.add_argument("--evolve", action="store_true", help="slowly walk layer, target and depth")
    g.add_argument("--evolve-seed", dest="evolve_seed", type=int, default=0, metavar="N", help="seed of the walk")
    g.add_argument("--evolve-period", dest="evolve_period_s", type=float, default=120.0, metavar="S",
                   help="seconds of audio between evolve steps (default 120)")
    g.add_argument("--log", metavar="FILE", help="also log to this file (rotated at 5 MB, 10 kept)")
    g.add_argument("--watchdog", action="store_true",
                   help="restart the engine if it dies or freezes (later recordings are numbered)")
    add_run_options(lp, budget=None, capture=False)
    # Only options given reach the namespace, so they win over the piece file; the rest are filled in after.
    lp.set_defaults(func=cmd_loop, run_defaults=given_only(lp))

    sv = sub.add_parser("service", help="run a piece as a systemd service (starts at boot, restarts on failure)")
    svsub = sv.add_subparsers(dest="service_command", required=True, parser_class=Parser)
    su = svsub.add_parser("unit", help="print the systemd unit for a piece TOML")
    su.add_argument("piece")
    si = svsub.add_parser("install", help="write the unit to ~/.config/systemd/user (then: systemctl --user "
                                          "enable --now streamdream-NAME)")
    si.add_argument("piece")
    si.add_argument("--folder", help="write the unit here instead (e.g. /etc/systemd/system)")
    sv.set_defaults(func=cmd_service)
