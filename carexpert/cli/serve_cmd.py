"""``carexpert serve [RUN | --base]``: the expert behind an OpenAI-compatible HTTP API.

    carexpert serve --base                      # http://127.0.0.1:8000/v1, no key needed on loopback
    carexpert serve RUN --port 8080
    carexpert serve --host 0.0.0.0 --api-key "$(python -c 'import secrets; print(secrets.token_urlsafe(32))')"
    carexpert serve --status                    # the running server's URL, requests and tokens/s
    carexpert serve --stop

The web stack is the optional extra ``carexpert[serve]``, imported only when a server
starts. See docs/serving.md.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from carexpert.cli.main import add_config_option
from carexpert.errors import UserError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("serve", help="serve a trained run (or the base model) over an OpenAI-compatible API")
    parser.add_argument("run", nargs="?", metavar="RUN",
                        help="run id (default: the newest run with an adapter); any finished run can be requested "
                             "by its id too")
    parser.add_argument("--base", action="store_true", help="load the base model at start, no adapter")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; any other needs an API key)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 = any free port)")
    parser.add_argument("--api-key", metavar="KEY", default=None,
                        help="require 'Authorization: Bearer KEY' (default: $CAREXPERT_API_KEY)")
    parser.add_argument("--max-queue", type=int, default=32,
                        help="requests waiting or answering at once; more get 503 + Retry-After (default 32)")
    parser.add_argument("--max-tokens", type=int, default=2048,
                        help="the most tokens a request may ask for (default 2048)")
    parser.add_argument("--max-body-kb", type=int, default=256, help="largest request body in KiB (default 256)")
    parser.add_argument("--max-loaded", type=int, default=1,
                        help="models kept in memory at once when requests name different runs (default 1)")
    parser.add_argument("--state-dir", metavar="DIR", default="serve",
                        help="where status.json and server.log go (default ./serve)")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--status", action="store_true", help="show the running server's status and exit")
    which.add_argument("--stop", action="store_true", help="stop the running server and exit")
    add_config_option(parser)
    parser.set_defaults(func=run_serve)


def describe(status) -> str:
    """One line: state, URL, requests, tokens/s."""
    state = status.effective_state()
    parts = [state, status.url or "-", f"model {status.model or '-'}",
             f"{status.requests} requests ({status.completed} done, {status.cancelled} cancelled, "
             f"{status.rejected} refused busy)", f"{status.tokens} tokens"]
    if status.tokens_per_second:
        parts.append(f"{status.tokens_per_second:.1f} tokens/s")
    if status.api_key_required:
        parts.append("API key required")
    if status.error:
        parts.append(f"error: {status.error}")
    return " · ".join(parts)


def run_serve(args: argparse.Namespace) -> int:
    from carexpert.serve.status import read_server_status, status_path, stop_server

    state_dir = Path(args.state_dir)
    if args.status:
        status = read_server_status(state_dir)
        if status is None:
            raise UserError("no server has run from here", where=str(status_path(state_dir)),
                            fix="start one with 'carexpert serve'")
        print(describe(status))
        return 0 if status.live else 1
    if args.stop:
        status = stop_server(state_dir)
        print(f"stopped the server at {status.url}")
        return 0
    return start(args, state_dir)


def start(args: argparse.Namespace, state_dir: Path) -> int:
    from carexpert.chat.source import find_adapter_run
    from carexpert.config import load_or_default
    from carexpert.serve.models import BASE_ID
    from carexpert.serve.server import ServeOptions, check_bind, run_server

    if args.base and args.run:
        raise UserError("give a RUN or --base, not both")
    options = check_bind(ServeOptions(host=args.host, port=args.port, api_key=args.api_key, max_queue=args.max_queue,
                                      max_tokens=args.max_tokens, max_body_bytes=args.max_body_kb * 1024,
                                      max_loaded=args.max_loaded, state_dir=state_dir))
    config = load_or_default(args.config)
    if not args.base:
        options.model = find_adapter_run(config, args.run).run_id  # the newest finished run when none is named
    else:
        options.model = BASE_ID
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    return run_server(config, options, say=lambda message: print(f"{time.strftime('%H:%M:%S')} {message}",
                                                                 flush=True))
