"""The command line: `streamdream render | live | loop | service | params | listen | devices | midi | models`.

Each command's options and its function live in the module of its name; this module builds the parser
and turns every user-facing error into one line and its exit code (errors.py).
"""
from __future__ import annotations

import os
import signal
import sys

from ..errors import EXIT_INTERRUPTED, EXIT_TERMINATED, EXIT_USAGE, DeviceError, RunError, StreamDreamError, Terminated
from . import dream, listen, live, loop, models, render, tools
from .parser import Parser, package_version


def build_parser() -> Parser:
    parser = Parser(prog="streamdream", description="DeepDream for audio: amplify what a music CNN hears.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {package_version()}")
    parser.add_argument("--debug", action="store_true",
                        help="show the traceback of an error instead of its one line (for a bug report)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser, metavar="COMMAND")
    for command in (render, live, loop, dream, listen, tools, models):
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    from ..atomic import raise_on_sigterm
    before = raise_on_sigterm()  # a service manager's SIGTERM cleans up temp files as Ctrl-C does
    args = None
    try:
        args = build_parser().parse_args(argv)
        args._argv = argv  # the watchdog starts the same command as its child
        return args.func(args)
    except StreamDreamError as exc:
        if getattr(args, "debug", False):
            raise  # the traceback, with what caused it (onnx2torch's own error under a ModelError)
        print(f"streamdream: error: {exc}", file=sys.stderr)
        if isinstance(exc, (DeviceError, RunError)) and "sounddevice" in sys.modules:
            # After its server vanished, PortAudio's exit handler can hang or abort; everything
            # worth keeping (recording, stats) is already closed, so leave without it.
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(exc.exit_code)
        return exc.exit_code
    except BrokenPipeError:  # the reader went away (`streamdream params | head`): nothing more to say
        sys.stderr.close()
        return 0
    except OSError as exc:
        # The system refused something a check could not foresee (a disk filled up, a file vanished):
        # the user can act on it, so one line. Anything else is a bug and keeps its traceback.
        if getattr(args, "debug", False):
            raise
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"streamdream: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:
        try:
            print("streamdream: stopped", file=sys.stderr)
        except OSError:
            pass  # the terminal is gone (closed window, SIGHUP): the exit code still says why
        return EXIT_TERMINATED if isinstance(exc, Terminated) else EXIT_INTERRUPTED
    finally:
        if before is not None:
            signal.signal(signal.SIGTERM, before)
