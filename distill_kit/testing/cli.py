"""``python -m distill_kit.testing``: serve the zoo (or the loopback server) until killed."""

from __future__ import annotations

import argparse
import threading
from typing import Any

from distill_kit.testing.answers import echo_answer
from distill_kit.testing.loopback import LoopbackServer, RateLimit
from distill_kit.testing.zoo import ZOO_NEEDS, ZooConfig, ZooServer, _web


def main(argv: list[str] | None = None) -> None:
    """``python -m distill_kit.testing [--port P] [--latency S] [--rate-limit R] [--burst N] [--echo] [--loopback]``:
    serve until killed; prints the root URL on the first line (for benchmarks that keep the server out of
    their process)."""
    parser = argparse.ArgumentParser(prog="python -m distill_kit.testing",
                                     description="Serve the API zoo (or, with --loopback, the fault-injecting "
                                                 "loopback server) on 127.0.0.1 until killed.")
    parser.add_argument("--port", type=int, default=0, help="0 = a free port (printed)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds every answer takes")
    parser.add_argument("--rate-limit", type=float, default=None,
                        help="requests per second (zoo: token bucket; --loopback: per --window seconds)")
    parser.add_argument("--burst", type=int, default=None, help="zoo: bucket size (default: one second's worth)")
    parser.add_argument("--window", type=float, default=1.0, help="--loopback: the rate limit's window in seconds")
    parser.add_argument("--echo", action="store_true", help="answer 'echo: <prompt>' instead of as the paper's models")
    parser.add_argument("--loopback", action="store_true",
                        help="serve the loopback server (answers 'echo: <prompt>', no scripted faults)")
    args = parser.parse_args(argv)
    if args.loopback:
        limit = RateLimit(requests=int(args.rate_limit), window=args.window) if args.rate_limit else None
        server: Any = LoopbackServer(latency=args.latency, rate_limit=limit)
    else:
        cfg = ZooConfig(latency=args.latency, rate_limit=args.rate_limit, burst=args.burst)
        if args.echo:
            cfg.answer = echo_answer
        try:
            _web()
        except ImportError:
            raise SystemExit(f"error: {ZOO_NEEDS}") from None
        server = ZooServer(cfg, port=args.port)
    with server as srv:
        print(srv.root_url, flush=True)
        threading.Event().wait()

