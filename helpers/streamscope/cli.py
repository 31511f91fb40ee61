"""The command line: ``python -m streamscope COMMAND``; every subcommand is defined here.

- ``assemble PATH``: a raw SSE body in, its assembled object out as JSON;
- ``serve``: the replay server in the foreground;
- ``record``: one real request to a live server, saved as a recording;
- ``list``: the recordings the replay server can answer.

Each command imports only what it needs, so ``assemble`` starts without loading
openai, plotly or jupyter. Messages go to stderr, one line each, without a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from functools import partial
from typing import Any

from .errors import StreamscopeError

__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_CANNOT_WRITE",
    "EXIT_COMPLETE",
    "EXIT_ERROR",
    "EXIT_INCOMPLETE",
    "build_parser",
    "cli_assemble",
    "cli_list",
    "cli_models",
    "cli_record",
    "cli_serve",
    "main",
]

# ``assemble`` exit status: the stream is complete; the input is not an SSE stream of JSON events
# (or cannot be read); the stream ended early; it carried an error (in the last two the partial object
# is still printed); the result could not be written (stdout closed, or its reader went away).
EXIT_COMPLETE, EXIT_BAD_INPUT, EXIT_INCOMPLETE, EXIT_ERROR, EXIT_CANNOT_WRITE = 0, 2, 3, 4, 5


def _say(command: str, message: str) -> None:
    if sys.stderr is None:  # started with stderr closed: nothing can be said
        return
    with contextlib.suppress(OSError, ValueError):
        print(f"streamscope {command}: " + " ".join(message.split()), file=sys.stderr, flush=True)


def cli_assemble(args: argparse.Namespace) -> int:
    """``python -m streamscope assemble PATH``: the input is read in pieces while it is assembled,
    so memory holds the assembled result, not the body; the output is always valid JSON
    (`streamscope.json_output`); anything to say is one line on stderr: the status, then warnings."""
    from .assemble import StreamFormatError, assemble_sse
    from .json_output import PIECE, discard_stdout, write_json

    path = args.path
    name = "stdin" if path == "-" else path
    try:
        if path != "-":
            file = open(path, "rb")  # noqa: SIM115 (closed by the `with` below)
        elif sys.stdin is not None:
            file = sys.stdin.buffer
        else:
            raise OSError("it is closed")
        with file:
            result = assemble_sse(iter(partial(file.read, PIECE), b""))
    except OSError as exc:
        _say("assemble", f"cannot read {name}: {exc.strerror or exc}")
        return EXIT_BAD_INPUT
    except StreamFormatError as exc:
        _say("assemble", f"not an SSE stream of JSON events: {exc}")
        return EXIT_BAD_INPUT
    try:
        write_json(result.object)
    except (OSError, ValueError) as exc:  # ValueError: writing to a closed file
        _say("assemble", f"cannot write the result: {getattr(exc, 'strerror', None) or exc}")
        discard_stdout()
        return EXIT_CANNOT_WRITE
    if result.error is not None:
        status, code = result.reason or "the stream carried an error", EXIT_ERROR
    elif not result.complete:
        status, code = f"the stream ended early: {result.reason}", EXIT_INCOMPLETE
    else:
        status, code = "", EXIT_COMPLETE
    said = [status] if status else []
    said += ["warning: " + warning for warning in result.warnings]
    if said:
        _say("assemble", "; ".join(said))
    return code


def cli_serve(args: argparse.Namespace) -> int:
    """``python -m streamscope serve``: the replay server in the foreground, until Ctrl-C."""
    import gc

    from .replay import ReplayServer

    try:
        server = ReplayServer(args.speed, args.recordings, host=args.host, port=args.port).listen()
    except (StreamscopeError, OSError) as exc:
        raise SystemExit(f"streamscope serve: {exc}") from None
    if not server.loopback:
        print(
            f"WARNING: {server.host} is not a loopback address: anyone who can reach this machine can use "
            "the replay server. Use --host 127.0.0.1 unless you mean it.",
            file=sys.stderr,
            flush=True,
        )
    count, skipped = len(server.index.entries()), len(server.index.problems)
    print(
        f"streamscope replay server listening on {server.base_url} ({count} recordings, "
        f"{f'{skipped} files skipped, ' if skipped else ''}speed {server.speed:g}); Ctrl-C to stop",
        flush=True,
    )
    # Everything loaded so far lives as long as the process: keep it out of the cyclic garbage
    # collector's full passes, which would otherwise pause the server for milliseconds mid-stream.
    gc.freeze()
    server.serve()
    print("streamscope replay server stopped", flush=True)
    return 0


def _json_object(option: str, source: str) -> dict[str, Any]:
    """The JSON object in the file ``source`` (``-``: stdin), given as ``option``."""
    from pathlib import Path

    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
        value = json.loads(text)
    except OSError as exc:
        raise ValueError(f"cannot read {option} {source}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{option} {source} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{option} {source} must hold a JSON object")
    return value


def _body_from(args: argparse.Namespace) -> dict[str, Any]:
    if args.body is not None and (args.model or args.message):
        raise ValueError("give either --body or --model with --message, not both")
    if args.body is None:
        if not (args.model and args.message):
            raise ValueError("give --body FILE (or - for stdin), or --model and --message")
        return {"model": args.model, "messages": [{"role": "user", "content": args.message}], "stream": True}
    return _json_object("--body", args.body)


def cli_models(args: argparse.Namespace) -> int:
    """``python -m streamscope models``: download and check the local backend's models, once."""
    from .backends.local import LocalServerError, fetch_models

    try:
        fetch_models()
    except LocalServerError as exc:
        _say("models", str(exc))
        return 2
    return 0


def cli_record(args: argparse.Namespace) -> int:
    """``python -m streamscope record``. Exit 0: saved; 1: saved, but the server answered an error;
    2: nothing saved (bad input, the name is taken, or the request failed); 3: saved, but the
    response ended early (kept as it arrived, marked incomplete)."""
    from pathlib import Path

    from .recorder import record

    try:
        body = _body_from(args)
        rec = record(
            args.path,
            body,
            name=args.name,
            out_dir=args.out,
            backend=args.backend,
            source=args.source,
            server=args.server,
            note=args.note,
            provenance=None if args.provenance is None else _json_object("--provenance", args.provenance),
            force=args.force,
        )
    except (ValueError, StreamscopeError, OSError) as exc:
        _say("record", str(exc))
        return 2
    where = Path(args.out) / f"{rec.name}.json"
    if rec.streamed:
        events = rec.events or []
        what = f"{len(events)} events over {events[-1].t if events else 0:.3f} s"
    else:
        what = f"one body after {rec.elapsed:.3f} s"
    origin = f"{rec.provenance['server']} ({rec.provenance['model']})"
    print(f"recorded {rec.name}: {what} from {origin}, saved to {where}")
    if rec.status >= 400:
        _say("record", f"the server answered HTTP {rec.status}; the recording keeps it")
        return 1
    if rec.incomplete is not None:
        _say(
            "record",
            f"the response is incomplete ({rec.incomplete.reason}); "
            "the recording keeps what arrived, marked incomplete",
        )
        return 3
    return 0


def cli_list(args: argparse.Namespace) -> int:
    """``python -m streamscope list``. Exit 0: every file is a usable recording; 1: some are skipped
    (said on stderr); 2: no such folder."""
    from pathlib import Path

    from .recording import RECORDINGS_DIR, load_folder

    folder = Path(args.recordings) if args.recordings else RECORDINGS_DIR
    if not folder.is_dir():
        _say("list", f"recordings folder {folder} does not exist")
        return 2
    recordings, skipped = load_folder(folder)
    for rec in recordings:
        kind = "stream" if rec.streamed else "single"
        print(f"{rec.name}\t{rec.path}\t{kind}\t{rec.label}")
    for problem in skipped.values():
        _say("list", f"skipped: {problem}")
    return 1 if skipped else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m streamscope",
        description="Learn and measure streaming LLM completions.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser(
        "assemble",
        help="assemble a raw SSE response body into its final object (JSON on stdout)",
        description="Exit 0: complete; 3: the stream ended early; 4: it carried an error; "
        "2: the input is not an SSE stream of JSON events; 5: the result could not be written.",
    )
    p.add_argument("path", help="a file holding one raw SSE response body, or - for stdin")
    p.set_defaults(func=cli_assemble)

    p = commands.add_parser("serve", help="replay the recordings on an OpenAI-compatible server")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    p.add_argument(
        "--speed", type=float, default=1.0, help="1 = recorded pace, 2 = twice as fast, 0 = no waiting"
    )
    p.add_argument("--recordings", default=None, help="folder of recordings (default: the package's)")
    p.set_defaults(func=cli_serve)

    p = commands.add_parser("record", help="make a real request and save it as a recording")
    p.add_argument(
        "--backend", default=None, help='"openai", "local" or a base URL (default: $STREAMSCOPE_BACKEND)'
    )
    p.add_argument("--path", default="/v1/chat/completions", help="API path (default: %(default)s)")
    p.add_argument("--body", default=None, help="request body as a JSON file, or - for stdin")
    p.add_argument("--model", default=None, help="shorthand: model for a chat request")
    p.add_argument("--message", default=None, help="shorthand: user message for a chat request")
    p.add_argument("--name", required=True, help="recording name (the file's stem)")
    p.add_argument("--out", default=".", help="folder to write NAME.json into (default: .)")
    p.add_argument("--source", default=None, help="provenance: what produced the recording, in words")
    p.add_argument("--server", default=None, help="provenance: the server that answered (default: its host)")
    p.add_argument("--note", default=None, help="provenance: a sentence added to the notes")
    p.add_argument(
        "--provenance",
        default=None,
        help="a JSON file of provenance fields the wire does not show (server version, model file and "
        "sha256, cpu, threads)",
    )
    p.add_argument("--force", action="store_true", help="replace NAME.json if it exists")
    p.set_defaults(func=cli_record)

    p = commands.add_parser(
        "models", help="download and check the local backend's models (once, into a cache folder)"
    )
    p.set_defaults(func=cli_models)

    p = commands.add_parser("list", help="list the recordings the replay server can answer")
    p.add_argument("--recordings", default=None, help="folder of recordings (default: the package's)")
    p.set_defaults(func=cli_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except StreamscopeError as exc:
        _say(args.command, str(exc))
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
