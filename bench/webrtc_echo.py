"""WebRTC echo benchmark: our server against Pipecat 1.14, driven by the same aiortc client.

For each target and each concurrency level a fresh server is started on a free loopback port,
client processes (``_client.py``) connect the sessions, and once every session has its
``bot-ready`` the measured window opens for all of them at once. Reported per level:

* offer->answer ms and answer->bot-ready ms (medians over sessions);
* echo round trip (tone-burst onset sent -> onset received), median and p95 over all bursts;
* received-audio continuity (seconds received / seconds of window) and gaps > 100 ms;
* server CPU (utime+stime of the server process tree from /proc over the window), total and
  per session, and the client processes' CPU;
* "flat": the largest level whose median RTT stays within 1.5x of the 1-session RTT.

Loopback only, no ICE servers anywhere (see ``_client.py`` and ``_pipecat_echo_bot.py`` for how
each side is made to gather 127.0.0.1).

    python bench/webrtc_echo.py --target pipecat --quick
    python bench/webrtc_echo.py --target both [--levels 1,4,8,16] [--duration 15]
    python bench/webrtc_echo.py --target ours --ours-cmd "pipeline-run run {spec} --port {port}"
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _refvenv import pipecat_python  # noqa: E402
from _stats import fmt, median, percentile, ratio  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
HOST = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")


# ---------------------------------------------------------------- server launch commands


ECHO_SPEC = ROOT / "pipelines" / "echo.yaml"


def loopback_spec(source: Path, out_dir: Path) -> Path:
    """A copy of ``source`` with ``ice.host_addresses: [127.0.0.1]`` (the rig is loopback only)."""
    import yaml

    spec = yaml.safe_load(source.read_text())
    ice = spec.setdefault("ice", {}) or {}
    spec["ice"] = ice
    ice.setdefault("servers", [])
    ice["host_addresses"] = [HOST]
    path = out_dir / f"loopback-{source.name}"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def ours_command(port: int, override: str | None = None, work_dir: Path | None = None) -> list[str]:
    """How our echo server is started: ``pipelines/echo.yaml`` restricted to loopback candidates.

    ``override`` is a shell-style command; ``{port}``, ``{host}`` and ``{spec}`` (the loopback copy
    of the echo spec) are replaced.
    """
    spec = loopback_spec(ECHO_SPEC, work_dir or Path(tempfile.mkdtemp(prefix="webrtc-echo-")))
    if override:
        return shlex.split(override.format(port=port, host=HOST, spec=spec))
    exe = str(ROOT / ".venv" / "bin" / "pipeline-run")
    return [exe, "run", str(spec), "--host", HOST, "--port", str(port)]


def pipecat_command(port: int) -> list[str]:
    """The reference: PROTOCOL.md §9 echo bot on the 1.14 development runner."""
    python = pipecat_python(runner=True)
    return [python, str(BENCH_DIR / "_pipecat_echo_bot.py"), "-t", "webrtc", "--host", HOST, "--port", str(port)]


# ---------------------------------------------------------------- server process


def free_port() -> int:
    """An unused loopback TCP port."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            kids.append(int(entry))
    return kids


def tree_cpu_seconds(pid: int) -> float:
    """utime+stime of ``pid`` and its descendants, in seconds (from /proc/<pid>/stat)."""
    total = 0.0
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)
        stack.extend(_children(current))
    return total


class Server:
    """A server under test, started on a free port, logs in a temp file."""

    def __init__(self, target: str, command: list[str], port: int, log_dir: Path) -> None:
        self.target = target
        self.command = command
        self.port = port
        self.log_path = log_dir / f"{target}-{port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def offer_url(self) -> str:
        return f"http://{HOST}:{self.port}/api/offer"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 90.0) -> None:
        """Launch and wait until the port accepts connections."""
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(self.command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.target} server exited ({self.proc.returncode}); see {self.log_path}")
            with contextlib.suppress(OSError), socket.create_connection((HOST, self.port), timeout=0.5):
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.target} server did not listen on {self.port} within {timeout}s")

    def stop(self) -> None:
        """SIGINT, then SIGKILL if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


# ---------------------------------------------------------------- one level


@dataclass
class LevelResult:
    """Figures for one target at one concurrency level."""

    target: str
    sessions: int
    connected: int = 0
    window_s: float = float("nan")
    offer_answer_ms: list[float] = field(default_factory=list)
    answer_ready_ms: list[float] = field(default_factory=list)
    rtt_ms: list[float] = field(default_factory=list)
    continuity: list[float] = field(default_factory=list)
    gaps: int = 0
    bursts_sent: int = 0
    server_cpu_s: float = float("nan")
    client_cpu_s: float = 0.0
    client_procs: int = 1
    errors: list[str] = field(default_factory=list)
    answer_hosts: set[str] = field(default_factory=set)

    @property
    def server_cpu_pct(self) -> float:
        """Server CPU as % of one core over the window."""
        return 100.0 * self.server_cpu_s / self.window_s

    @property
    def server_cpu_pct_per_session(self) -> float:
        return self.server_cpu_pct / self.sessions

    @property
    def client_cpu_pct(self) -> float:
        return 100.0 * self.client_cpu_s / self.window_s


async def _read_event(proc: asyncio.subprocess.Process, wait_s: float) -> dict[str, Any]:
    assert proc.stdout is not None
    while True:
        line = await asyncio.wait_for(proc.stdout.readline(), wait_s)
        if not line:
            raise RuntimeError("client process ended early")
        with contextlib.suppress(ValueError):
            event: dict[str, Any] = json.loads(line)
            if isinstance(event, dict) and "event" in event:
                return event


async def run_level(server: Server, sessions: int, duration: float, client_procs: int, settle: float) -> LevelResult:
    """Connect ``sessions`` sessions over ``client_procs`` client processes and measure one window."""
    result = LevelResult(server.target, sessions, client_procs=client_procs)
    shares = [sessions // client_procs + (1 if i < sessions % client_procs else 0) for i in range(client_procs)]
    procs = []
    for share in (s for s in shares if s > 0):
        cmd = [sys.executable, str(BENCH_DIR / "_client.py"), "--url", server.offer_url]
        cmd += ["--sessions", str(share), "--duration", str(duration)]
        procs.append(
            await asyncio.create_subprocess_exec(
                *cmd, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=ROOT
            )
        )
    try:
        ready = await asyncio.gather(*(_read_event(p, 120) for p in procs))
        result.connected = sum(int(r["connected"]) for r in ready)
        await asyncio.sleep(settle)  # jitter buffers and pacing settle before measuring
        cpu0 = tree_cpu_seconds(server.pid)
        t0 = time.monotonic()
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(b"go\n")
            await p.stdin.drain()
        await asyncio.sleep(duration)
        cpu1 = tree_cpu_seconds(server.pid)
        server_window = time.monotonic() - t0
        reports = await asyncio.gather(*(_read_event(p, duration + 60) for p in procs))
        result.server_cpu_s = cpu1 - cpu0
        result.window_s = server_window
        for report in reports:
            result.client_cpu_s += float(report["client_cpu_s"])
            for s in report["sessions"]:
                if s["error"]:
                    result.errors.append(s["error"])
                    continue
                result.answer_hosts.update(s["answer_hosts"])
                result.offer_answer_ms.append(s["offer_answer_ms"])
                result.answer_ready_ms.append(s["answer_ready_ms"])
                result.rtt_ms.extend(s["rtt_ms"])
                result.continuity.append(s["continuity"])
                result.gaps += int(s["gaps_over_100ms"])
                result.bursts_sent += int(s["bursts_sent"])
    finally:
        for p in procs:
            with contextlib.suppress(ProcessLookupError):
                if p.returncode is None:
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(p.wait(), 15)
                if p.returncode is None:
                    p.kill()
                    await p.wait()
    return result


def auto_client_procs(sessions: int) -> int:
    """One client process up to 4 sessions, else two (the client's own Opus work is heavy)."""
    return 1 if sessions <= 4 else 2


async def run_target(target: str, args: argparse.Namespace, log_dir: Path) -> list[LevelResult]:
    """Every level for one target, each on a freshly started server."""
    results: list[LevelResult] = []
    for sessions in args.level_list:
        port = free_port()
        command = ours_command(port, args.ours_cmd, log_dir) if target == "ours" else pipecat_command(port)
        server = Server(target, command, port, log_dir)
        print(f"[{target}] {sessions} session(s): {' '.join(command)}", file=sys.stderr, flush=True)
        try:
            server.start()
            procs = args.client_procs or auto_client_procs(sessions)
            results.append(await run_level(server, sessions, args.duration, procs, args.settle))
        except Exception as exc:
            print(f"[{target}] {sessions} session(s) failed: {exc}", file=sys.stderr, flush=True)
            failed = LevelResult(target, sessions)
            failed.errors.append(str(exc))
            results.append(failed)
        finally:
            server.stop()
        print(f"[{target}] {sessions} session(s) done; server log {server.log_path}", file=sys.stderr, flush=True)
    return results


# ---------------------------------------------------------------- report


def flat_level(results: list[LevelResult], tolerance: float = 1.5) -> int:
    """Largest session count whose median RTT is within ``tolerance`` x the 1-session median."""
    base = next((median(r.rtt_ms) for r in results if r.sessions == 1 and r.rtt_ms), float("nan"))
    if base != base:
        return 0
    flat = 0
    for r in sorted(results, key=lambda x: x.sessions):
        if r.rtt_ms and r.connected == r.sessions and median(r.rtt_ms) <= tolerance * base:
            flat = r.sessions
        else:
            break
    return flat


def print_target(results: list[LevelResult]) -> None:
    """One table per target."""
    if not results:
        return
    print(f"\nwebrtc_echo: target={results[0].target} (medians over sessions; RTT over all bursts)")
    head = (
        f"{'sess':>4} | {'ok':>3} | {'offer->ans ms':>13} | {'ans->ready ms':>13} | {'RTT med ms':>10} | "
        f"{'RTT p95 ms':>10} | {'bursts':>9} | {'contin.':>7} | {'gaps':>4} | "
        f"{'srv CPU %':>9} | {'%/sess':>6} | {'client CPU % (procs)':>20}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        print(
            f"{r.sessions:>4} | {r.connected:>3} | {fmt(median(r.offer_answer_ms)):>13} | "
            f"{fmt(median(r.answer_ready_ms)):>13} | {fmt(median(r.rtt_ms)):>10} | "
            f"{fmt(percentile(r.rtt_ms, 95)):>10} | {len(r.rtt_ms):>4}/{r.bursts_sent:<4} | "
            f"{fmt(median(r.continuity), 3):>7} | {r.gaps:>4} | {fmt(r.server_cpu_pct):>9} | "
            f"{fmt(r.server_cpu_pct_per_session, 2):>6} | {fmt(r.client_cpu_pct):>14} ({r.client_procs})"
        )
        for err in sorted(set(r.errors))[:3]:
            print(f"     error: {err[:150]}")
    hosts = sorted(set().union(*(r.answer_hosts for r in results)))
    print(f"server candidate addresses seen in answers: {', '.join(hosts) or '-'}")
    print(f"flat (median RTT <= 1.5x the 1-session RTT) up to: {flat_level(results)} session(s)")


def print_ratios(ours: list[LevelResult], ref: list[LevelResult]) -> None:
    """ours / pipecat at each level."""
    by_level = {r.sessions: r for r in ref}
    print("\nwebrtc_echo ratios ours/pipecat (lower is better for all columns)")
    head = (
        f"{'sess':>4} | {'offer->ans':>10} | {'ans->ready':>10} | {'RTT med':>7} | {'RTT p95':>7} | "
        f"{'srv CPU/sess':>12}"
    )
    print(head)
    print("-" * len(head))
    for o in ours:
        p = by_level.get(o.sessions)
        if p is None:
            continue
        print(
            f"{o.sessions:>4} | {fmt(ratio(median(o.offer_answer_ms), median(p.offer_answer_ms)), 2):>10} | "
            f"{fmt(ratio(median(o.answer_ready_ms), median(p.answer_ready_ms)), 2):>10} | "
            f"{fmt(ratio(median(o.rtt_ms), median(p.rtt_ms)), 2):>7} | "
            f"{fmt(ratio(percentile(o.rtt_ms, 95), percentile(p.rtt_ms, 95)), 2):>7} | "
            f"{fmt(ratio(o.server_cpu_pct_per_session, p.server_cpu_pct_per_session), 2):>12}"
        )
    print(f"flat: ours {flat_level(ours)} vs pipecat {flat_level(ref)} session(s)")


async def amain(args: argparse.Namespace) -> dict[str, list[LevelResult]]:
    """Run the selected targets and print the tables."""
    targets = ["ours", "pipecat"] if args.target == "both" else [args.target]
    log_dir = Path(tempfile.mkdtemp(prefix="webrtc-echo-"))
    results = {t: await run_target(t, args, log_dir) for t in targets}
    print(f"\n{os.cpu_count()} CPU(s); window {args.duration:g} s per level; server logs in {log_dir}")
    for target in targets:
        print_target(results[target])
    if "ours" in results and "pipecat" in results:
        print_ratios(results["ours"], results["pipecat"])
    return results


def main(argv: list[str] | None = None) -> None:
    """Command line entry."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--target", choices=["ours", "pipecat", "both"], default="both")
    parser.add_argument("--quick", action="store_true", help="levels 1,4 and 5 s windows")
    parser.add_argument("--levels", default=None, help="comma-separated session counts (default 1,4,8,16)")
    parser.add_argument("--duration", type=float, default=None, help="measured window per level, s (default 15)")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds between bot-ready and the window")
    parser.add_argument("--client-procs", type=int, default=0, help="client processes (0 = auto: 1 up to 4, else 2)")
    parser.add_argument("--ours-cmd", default=None, help="command for our server; {port}, {host}, {spec} replaced")
    parser.add_argument("--json", default=None, help="also write raw results to this file")
    args = parser.parse_args(argv)
    levels = args.levels or ("1,4" if args.quick else "1,4,8,16")
    args.level_list = [int(x) for x in levels.split(",")]
    args.duration = args.duration or (5.0 if args.quick else 15.0)
    results = asyncio.run(amain(args))
    if args.json:
        raw = {t: [asdict(r) for r in rs] for t, rs in results.items()}
        Path(args.json).write_text(json.dumps(raw, indent=1, default=sorted))


if __name__ == "__main__":
    main()
