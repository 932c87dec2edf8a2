"""Smoke test: bench/fuzz.py runs every target and prints its counts (a handful of cases)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(120)
def test_bench_fuzz_prints_counts_per_target() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "fuzz.py"), "--cases", "4"],
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
        cwd=ROOT,
    )
    out = proc.stdout
    assert proc.returncode == 0, (out[-2000:], proc.stderr[-2000:])
    for target in ("offer ", "patch ", "start ", "raw "):
        assert any(line.startswith(target) and "5xx=0" in line for line in out.splitlines()), out
    assert "threads before=" in out and "rss MiB before=" in out and "sessions left besides" in out
    assert "datachannel    cases=4 messages sent=" in out, out  # the data channel is a default target too
    assert "check_offer: 4 cases" in out and "all properties held" in out


@pytest.mark.timeout(60)
def test_bench_fuzz_datachannel_target_prints_its_tallies() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "fuzz.py"), "--targets", "datachannel", "--no-parsers", "--cases", "6"],
        capture_output=True,
        text=True,
        timeout=55,
        check=False,
        cwd=ROOT,
    )
    out = proc.stdout
    assert proc.returncode == 0, (out[-2000:], proc.stderr[-2000:])
    assert "datachannel    cases=6 messages sent=" in out and "peers opened=1" in out, out
    assert "x6      client-message answered" in out and "client-ready -> bot-ready" in out, out
    assert "junk counted: {" in out and "failures=0" in out and "all properties held" in out, out
    dc = out.split("datachannel    cases=", 1)[1]
    assert "threads before=" in dc and "rss MiB before=" in dc, out
