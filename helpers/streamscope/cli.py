"""The command line: ``python -m streamscope COMMAND``.

Each command imports only what it needs, so ``assemble`` starts without loading
openai, plotly or jupyter.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def _assemble(args: argparse.Namespace) -> int:
    from .assemble import cli_assemble

    return cli_assemble(args.path)


def _serve(args: argparse.Namespace) -> int:
    from .replay import serve_forever

    serve_forever(host=args.host, port=args.port, speed=args.speed, recordings=args.recordings)
    return 0


def _record(args: argparse.Namespace) -> int:
    from .record import cli_record

    return cli_record(args)


def _models(args: argparse.Namespace) -> int:
    from .local import LocalServerError, fetch_models

    try:
        fetch_models()
    except LocalServerError as exc:
        print(f"streamscope models: {exc}", file=sys.stderr)
        return 2
    return 0


def _list(args: argparse.Namespace) -> int:
    from .recording import RECORDINGS_DIR, iter_recordings

    for rec in iter_recordings(args.recordings or RECORDINGS_DIR):
        kind = "stream" if rec.streamed else "single"
        print(f"{rec.name}\t{rec.path}\t{kind}\t{rec.label}")
    return 0


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
        "2: the input is not an SSE stream of JSON events.",
    )
    p.add_argument("path", help="a file holding one raw SSE response body, or - for stdin")
    p.set_defaults(func=_assemble)

    p = commands.add_parser("serve", help="replay the recordings on an OpenAI-compatible server")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    p.add_argument(
        "--speed", type=float, default=1.0, help="1 = recorded pace, 2 = twice as fast, 0 = no waiting"
    )
    p.add_argument("--recordings", default=None, help="folder of recordings (default: the package's)")
    p.set_defaults(func=_serve)

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
    p.add_argument("--notes", default=None, help="added to the provenance notes (what this server does)")
    p.set_defaults(func=_record)

    p = commands.add_parser(
        "models", help="download and check the local backend's models (once, into a cache folder)"
    )
    p.set_defaults(func=_models)

    p = commands.add_parser("list", help="list the recordings the replay server can answer")
    p.add_argument("--recordings", default=None, help="folder of recordings (default: the package's)")
    p.set_defaults(func=_list)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
