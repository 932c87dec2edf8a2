"""Smoke test: the frames benchmark runs on our core and prints its tables (no timing checks)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_frames_throughput_quick_ours_only() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "frames_throughput.py"), "--quick", "--ours-only", "--frames", "500"],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout
    assert "ours fps" in out and "pipecat fps" in out
    rows = [line.split("|") for line in out.splitlines() if line.strip()[:2].strip().isdigit()]
    assert [int(r[0]) for r in rows[:3]] == [1, 10, 50]
    assert "system frame overtakes queued data" in out
    assert "UserStartedSpeakingFrame" in out and "InterruptionFrame" in out
