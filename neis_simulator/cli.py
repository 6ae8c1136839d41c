"""Command-line options of the simulator, shared by ``python -m neis_simulator`` and the
Django command ``manage.py neis_simulator``."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable

from .clock import parse_time
from .config import SimulatorConfig
from .faults import KINDS
from .server import Simulator
from .state import KEY_STATES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the simulator's options to ``parser`` (an argparse or Django command parser)."""
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="Address to listen on (default 127.0.0.1).")
    add("--port", type=int, default=8077, help="Port to listen on; 0 picks a free one.")
    add("--seed", type=int, default=1, help="Seed of the generated world (default 1).")
    add("--clock", help="Simulated start time, ISO 8601 (naive means KST); default: now.")
    add(
        "--freeze",
        action="store_true",
        help="Freeze the simulated clock; it then moves only through /_sim/set_clock|advance.",
    )
    add("--latency-ms", type=float, default=0.0, help="Latency added to every /hub answer.")
    add(
        "--latency-jitter-ms",
        type=float,
        default=0.0,
        help="Extra random latency, up to this many ms, per /hub answer.",
    )
    add(
        "--fault-rate",
        type=float,
        default=0.0,
        help="Share of /hub requests that fail (0-1), with a kind from --fault-kinds.",
    )
    add(
        "--fault-kinds",
        default="",
        help=f"Comma-separated fault kinds for --fault-rate (default all): {', '.join(KINDS)}.",
    )
    add(
        "--fault-latency-ms",
        type=float,
        default=200.0,
        help="Delay of the 'latency' fault (default 200).",
    )
    add(
        "--hang-seconds",
        type=float,
        default=30.0,
        help="How long the 'hang' fault holds a request before closing it (default 30).",
    )
    add(
        "--maintenance",
        action="append",
        default=[],
        metavar="START/END",
        help="A maintenance window in simulated time, e.g. 2026-11-22T02:00/2026-11-22T04:00; "
        "repeatable.",
    )
    add(
        "--page-mode",
        choices=("info200", "repeat"),
        default="info200",
        help="Past the last page: top-level INFO-200 (default) or page 1 again.",
    )
    add(
        "--overstate",
        type=int,
        default=0,
        help="Report list_total_count this many rows above the truth (default 0).",
    )
    add(
        "--quota",
        type=int,
        default=SimulatorConfig.daily_quota,
        help=f"Calls per key per day before ERROR-337 (default {SimulatorConfig.daily_quota}).",
    )
    add(
        "--keyless-cap",
        type=int,
        default=SimulatorConfig.keyless_daily_cap,
        help="Calls per day without a key before ERROR-337.",
    )
    add("--quota-reset", default="00:00", help="KST time of day the quotas reset (HH:MM).")
    add(
        "--key-quota",
        nargs="*",
        default=[],
        metavar="KEY:N",
        help="A daily quota of its own for a key (default: --quota for every key).",
    )
    add(
        "--keys",
        nargs="*",
        default=[],
        metavar="KEY[:STATE]",
        help="Extra keys, each optionally ':valid', ':invalid' or ':blocked' (default valid).",
    )
    add(
        "--content-type",
        default=SimulatorConfig.json_content_type,
        help="Content-Type of JSON answers (default text/html;charset=UTF-8).",
    )
    add(
        "--short-messages",
        action="store_true",
        help="RESULT messages as their first sentence only.",
    )
    add(
        "--archive-before",
        type=int,
        default=None,
        metavar="AY",
        help="Serve academic years before AY from *Timetablebgs only (default: current AY-1).",
    )
    add(
        "--no-archive-padding",
        action="store_true",
        help="Do not zero-pad CLASS_NM in archive answers.",
    )
    add("--no-dirt", action="store_true", help="Clean data: no dirt of section 7.4.")
    add("--cpu", type=int, default=None, help="Pin the server process to this CPU core.")
    add(
        "--ready-json",
        action="store_true",
        help="Print one JSON line {url, key, pid} when listening (for programs).",
    )


def config_from_options(options: dict) -> SimulatorConfig:
    """A SimulatorConfig from parsed options; ValueError with a clear message if invalid."""
    kinds = tuple(k.strip() for k in (options.get("fault_kinds") or "").split(",") if k.strip())
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; known: {', '.join(KINDS)}")
    if not 0 <= options["fault_rate"] <= 1:
        raise ValueError("--fault-rate must be between 0 and 1")
    for name in ("quota", "keyless_cap", "overstate"):
        if options[name] < 0:
            raise ValueError(f"--{name.replace('_', '-')} must not be negative")
    keys = []
    for item in options.get("keys") or ():
        key, _, state = item.partition(":")
        state = state or "valid"
        if not key or state not in KEY_STATES:
            raise ValueError(f"bad --keys item {item!r}: use KEY or KEY:{'|'.join(KEY_STATES)}")
        keys.append((key, state))
    key_quotas = []
    for item in options.get("key_quota") or ():
        key, _, number = item.rpartition(":")
        if not key or not number.isdigit():
            raise ValueError(f"bad --key-quota item {item!r}: use KEY:N, N a whole number")
        key_quotas.append((key, int(number)))
    windows = []
    for item in options.get("maintenance") or ():
        start, sep, end = item.partition("/")
        try:
            if not sep or parse_time(start) >= parse_time(end):
                raise ValueError
        except ValueError:
            raise ValueError(f"bad --maintenance {item!r}: use START/END, ISO times") from None
        windows.append((start, end))
    if options.get("clock"):
        try:
            parse_time(options["clock"])
        except ValueError:
            raise ValueError(f"bad --clock {options['clock']!r}: use ISO 8601") from None
    try:
        reset = options.get("quota_reset") or "00:00"
        SimulatorConfig(quota_reset=reset).quota_reset_time()
    except ValueError:
        raise ValueError(f"bad --quota-reset {reset!r}: use HH:MM") from None
    config = SimulatorConfig(
        seed=options["seed"],
        clock=options.get("clock"),
        freeze_clock=options["freeze"],
        latency_ms=options["latency_ms"],
        latency_jitter_ms=options["latency_jitter_ms"],
        fault_rate=options["fault_rate"],
        fault_kinds=kinds,
        fault_latency_ms=options["fault_latency_ms"],
        hang_seconds=options["hang_seconds"],
        maintenance=tuple(windows),
        page_mode=options["page_mode"],
        overstate=options["overstate"],
        daily_quota=options["quota"],
        keyless_daily_cap=options["keyless_cap"],
        quota_reset=reset,
        keys=tuple(keys),
        key_quotas=tuple(key_quotas),
        json_content_type=options["content_type"],
        long_messages=not options["short_messages"],
        archive_before_ay=options.get("archive_before"),
        archive_pad_class=not options["no_archive_padding"],
    )
    if options["no_dirt"]:
        config = config.without_dirt()
    return config


def serve(config: SimulatorConfig, options: dict, write: Callable[[str], object]) -> None:
    """Build the world, listen, print where, and serve until interrupted."""
    if options.get("cpu") is not None:
        os.sched_setaffinity(0, {options["cpu"]})
    sim = Simulator(config, host=options["host"], port=options["port"])
    url = sim.url
    if options.get("ready_json"):
        write(json.dumps({"url": url, "key": sim.key, "pid": os.getpid()}))
    else:
        write(f"NEIS simulator listening: {url}/hub/<Service>  (control: {url}/_sim/stats)")
        write(f"test key: {sim.key}")
        write(
            f"simulated now: {sim.control.clock()}" + (" (frozen)" if config.freeze_clock else "")
        )
        write(f"{len(sim.world.schools())} schools, seed {config.seed}; Ctrl-C stops.")
    try:
        sim.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        sim.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m neis_simulator",
        description="Serve a simulated NEIS Open API hub (open.neis.go.kr) until interrupted.",
    )
    add_arguments(parser)
    options = vars(parser.parse_args(argv))
    try:
        config = config_from_options(options)
    except ValueError as exc:
        parser.error(str(exc))

    def write(line: str) -> None:
        print(line, flush=True)

    serve(config, options, write)
    return 0
