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
    assert "check_offer: 4 cases" in out and "all properties held" in out
