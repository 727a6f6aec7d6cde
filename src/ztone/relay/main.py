"""``ztone-relay``: command line of the TCP fallback relay (:mod:`ztone.relay.server`).

Exit status: 0 after SIGTERM/SIGINT, 1 when the TCP port cannot be listened on,
2 on bad arguments. SIGUSR1 logs the counters; so does ``--stats-interval``.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import signal
import sys

from ztone.relay.server import RelayLimits, RelayServer

log = logging.getLogger("ztone.relay")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError("must be more than 0")
    return value


def _network(text: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(text, strict=False)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="ztone-relay",
        description="TCP fallback relay for ZeroTier nodes whose UDP is blocked "
        "(speaks zerotier-one's tcp-proxy protocol).",
    )
    p.add_argument(
        "--listen",
        action="append",
        default=None,
        metavar="IP",
        help="address to accept TCP on (repeatable; default 0.0.0.0)",
    )
    p.add_argument("--port", type=int, default=443, help="TCP port (default 443)")
    p.add_argument(
        "--udp-bind",
        default="0.0.0.0",
        metavar="IP",
        help="IPv4 address for the per-client UDP sockets (default 0.0.0.0)",
    )
    p.add_argument(
        "--max-clients",
        type=_positive_int,
        default=1024,
        help="concurrent clients; more are refused (default 1024)",
    )
    p.add_argument(
        "--rate",
        type=_positive_int,
        default=8_000_000,
        metavar="BYTES",
        help="bytes per second per client, both directions; 0 = no limit (default 8000000)",
    )
    p.add_argument(
        "--burst",
        type=_positive_int,
        default=1_000_000,
        metavar="BYTES",
        help="bytes a client may send at once above its rate (default 1000000)",
    )
    p.add_argument(
        "--idle-timeout",
        type=_positive_float,
        default=300.0,
        metavar="SECONDS",
        help="close a client silent this long (default 300)",
    )
    p.add_argument(
        "--allow-dest",
        type=_network,
        action="append",
        default=[],
        metavar="CIDR",
        help="relay only to these IPv4 networks (repeatable; default any)",
    )
    p.add_argument(
        "--stats-interval",
        type=_positive_int,
        default=0,
        metavar="SECONDS",
        help="log the counters this often (0: only on SIGUSR1)",
    )
    p.add_argument("-v", "--verbose", action="store_true", help="log every client")
    return p


async def serve(args: argparse.Namespace) -> int:
    loop = asyncio.get_running_loop()
    limits = RelayLimits(
        max_clients=args.max_clients,
        rate_bytes_per_second=args.rate,
        burst_bytes=args.burst,
        idle_timeout=args.idle_timeout,
        allowed_destinations=tuple(args.allow_dest),
    )
    relay = RelayServer(loop, limits, udp_host=args.udp_bind)
    hosts = args.listen or ["0.0.0.0"]
    try:
        await relay.start(hosts, args.port)
    except OSError as e:
        log.error("cannot listen on TCP %s port %d: %s", ",".join(hosts), args.port, e)
        return 1
    stop = asyncio.Event()

    def stats() -> None:
        log.info("counters %s clients=%d", json.dumps(relay.counters.as_dict()), len(relay.clients))

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, stats)
    log.info(
        "ztone-relay listening on TCP %s port %s",
        ",".join(hosts),
        ",".join(str(p) for p in relay.ports),
    )
    try:
        if args.stats_interval:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), args.stats_interval)
                except TimeoutError:
                    stats()
        else:
            await stop.wait()
    finally:
        stats()
        await relay.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        args = parser().parse_args(argv)
    except SystemExit as e:
        return int(e.code or 0)
    if not 0 < args.port <= 65535:
        print(f"ztone-relay: port {args.port} out of range", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    return asyncio.run(serve(args))


def console_main() -> None:
    sys.exit(main())


if __name__ == "__main__":
    console_main()
