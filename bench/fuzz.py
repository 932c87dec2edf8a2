"""Long fuzz run of the HTTP edge, the data channel and the parsers: the suite's properties, thousands of cases.

One real server on loopback (production keepalive), a good aiortc client echoing meanwhile, and
hypothesis drawing from the same strategies as tests/fuzz and tests/webrtc/hostile.py. Prints,
per HTTP target, the number of cases and the status codes seen, then 5xx count, tracebacks,
failures, leaked sessions and the server's threads and memory before and after (once fuzzed
sessions have timed out).

The ``datachannel`` target (tests/fuzz/datachannel.py) connects one real aiortc peer (with
keepalive pings) and sends each case as a batch of hostile frames on its data channel: text and
binary, arbitrary and deeply nested JSON, strings just under and over ``max_message_bytes``, RTVI
and signalling envelopes with wrong types, invalid UTF-8, floods. After every batch the session
must still answer (``client-message`` -> ``server-response``, every fuzzed request with a usable
id answered, ``client-ready`` -> ``bot-ready``), with no traceback, no error-level log line and
no junk counted as our own bug. A peer that dies is a failure and is replaced. It prints the
cases, messages sent, outcomes, junk counts per kind and threads/memory before and after.

    python bench/fuzz.py                 # 2000 cases per target
    python bench/fuzz.py --cases 10000 --targets offer,patch
    python bench/fuzz.py --targets datachannel --no-parsers --cases 300
    python bench/fuzz.py --parsers-only --cases 20000

Exit status 1 if any property failed.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests.fuzz.datachannel import datachannel_case, fuzzer  # noqa: E402
from tests.fuzz.harness import FuzzEnv, Snapshot  # noqa: E402
from tests.fuzz.properties import CASES, aiortc_offer  # noqa: E402

#: Every target: the HTTP ones, then the data channel.
TARGETS: dict[str, Any] = {**CASES, "datachannel": datachannel_case}


def _settings(cases: int) -> settings:
    return settings(
        max_examples=cases,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # count cases, do not minimise failures
        suppress_health_check=list(HealthCheck),
        report_multiple_bugs=True,
    )


def _bind(case: Any, env: FuzzEnv) -> Any:
    def run(data: st.DataObject) -> None:
        case(env, data)

    return run


def run_http(targets: list[str], cases: int) -> bool:
    """Fuzz each target against one server; print the counts; True if every property held."""
    env = FuzzEnv()
    env.start()
    ok = True
    try:
        before = env.before
        for name in targets:
            case = TARGETS[name]
            started = time.monotonic()
            dc_before = env.snapshot() if name == "datachannel" else None
            try:
                _settings(cases)(given(data=st.data())(_bind(case, env)))()
            except Exception as exc:  # a property failed: keep going, report at the end
                ok = False
                print(f"{name}: stopped early: {type(exc).__name__}: {str(exc)[:300]}")
            print(f"{name}: {time.monotonic() - started:.1f} s")
            if dc_before is not None:
                ok = report_datachannel(env, dc_before) and ok
        env.assert_echo()
        after = env.settle(within=60)
        print()
        print(env.report())
        print(f"good client echo: kept (its session {env.good_pc_id()[:32]}... still answers)")
        assert before is not None
        print(f"threads before={before.threads} after={after.threads}")
        print(f"rss MiB before={before.rss_mb:.0f} after={after.rss_mb:.0f}")
        print(f"sessions left besides the good client: {after.sessions - 1}")
        for failure in env.failures[:10]:
            print("FAIL", failure[:400])
        ok = ok and not env.failures and not env.watch.tracebacks and after.sessions == 1
    finally:
        env.stop()
    return ok


def report_datachannel(env: FuzzEnv, before: Snapshot) -> bool:
    """Close the fuzzing peer, wait for its session to end, print its tallies; True if bounded."""
    fuzz = fuzzer(env)
    junk = fuzz.junk_totals()
    env.call(fuzz.close())
    after = env.settle(within=30)
    threads_ok = after.threads <= before.threads + 2
    rss_ok = after.rss_mb - before.rss_mb < DATACHANNEL_RSS_GROWTH_MB
    print(f"datachannel    cases={fuzz.cases} messages sent={fuzz.sent} peers opened={fuzz.peers_opened}")
    for outcome, n in sorted(fuzz.outcomes.items()):
        print(f"    x{n:<6} {outcome}")
    print(f"    junk counted: {junk}")
    print(f"    threads before={before.threads} after={after.threads}{'' if threads_ok else ' (GREW)'}")
    print(f"    rss MiB before={before.rss_mb:.0f} after={after.rss_mb:.0f}{'' if rss_ok else ' (GREW)'}")
    return threads_ok and rss_ok


#: Memory the data-channel run may leave behind (allocator slack for its multi-100 KB frames).
DATACHANNEL_RSS_GROWTH_MB = 128


def run_parsers(cases: int) -> bool:
    """The offline parser properties (candidates, bounded JSON, offer shape, initialize)."""
    logging.disable(logging.WARNING)
    import structlog

    def drop(*_: Any) -> Any:
        raise structlog.DropEvent

    structlog.configure(processors=[drop], cache_logger_on_first_use=False)
    from tests.fuzz.test_fuzz_parsers import PARSER_PROPERTIES

    ok = True
    for name, (strategy, prop, share) in PARSER_PROPERTIES.items():
        n = max(1, int(cases * share))
        started = time.monotonic()
        try:
            _settings(n)(given(strategy)(prop))()
            outcome = "ok"
        except Exception as exc:
            ok = False
            outcome = f"FAILED: {type(exc).__name__}: {str(exc)[:300]}"
        print(f"{name}: {n} cases, {time.monotonic() - started:.1f} s, {outcome}")
    return ok


def main() -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=2000, help="cases per target (default 2000)")
    parser.add_argument("--targets", default=",".join(TARGETS), help=f"targets, from {','.join(TARGETS)}")
    parser.add_argument("--parsers-only", action="store_true", help="only the offline parser properties")
    parser.add_argument("--no-parsers", action="store_true", help="skip the offline parser properties")
    args = parser.parse_args()
    # the server thread uses `random` (aioice ids) while hypothesis draws in this one
    warnings.filterwarnings("ignore", "Do not use the `random` module inside strategies")
    warnings.filterwarnings("ignore", "Generating overly large repr")
    targets = [t for t in args.targets.split(",") if t]
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        parser.error(f"unknown target(s) {unknown}; choose from {list(TARGETS)}")
    asyncio.run(aiortc_offer())  # fail fast if aiortc cannot make an offer here
    ok = True
    if not args.parsers_only:
        ok = run_http(targets, args.cases)
    if not args.no_parsers:
        ok = run_parsers(args.cases) and ok
    print("all properties held" if ok else "PROPERTIES FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
