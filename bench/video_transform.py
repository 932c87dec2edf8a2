"""Video-transform benchmark: our server against Pipecat 1.14, driven by the same aiortc client.

Both servers run camera in -> Sobel edge detection (the same numpy code) -> video out at
640x480, 30 fps. For each target a fresh server is started on a free loopback port, a client
process (``_video_client.py``) connects the sessions, each sending a 640x480 test pattern that
carries a frame id, and once every session has its ``bot-ready`` (plus ``--settle`` s) the
measured window opens. Reported per target:

* fps received and fps sustained (distinct camera frames that came back per second), per session;
* per-frame latency through the server (frame sent -> first arrival back), median and p95;
* server CPU (utime+stime of the server process tree from /proc over the window), per session;
* ratios ours/pipecat. Target: fps sustained >= the reference's at <= 0.7x its CPU.

Ours: ``pipeline-run run`` on ``pipelines/video-transform.yaml`` with only ``video.edges``
(mode ``edges``), audio off, ``ice.host_addresses: [127.0.0.1]``, ``video_in_format: yuv420p``:
the Sobel reads the decoded Y plane and the edge picture goes out as yuv420p, never RGB (the
threshold is scaled to limited-range Y, so the edges are the RGB path's). ``ours-rgb`` is the
same with ``video_in_format: RGB`` (RGB in, luma, RGB out; Pipecat always delivers RGB). Reference:
``_pipecat_video_bot.py`` on the 1.14 development runner. Loopback only, no ICE servers.

    python bench/video_transform.py --quick
    python bench/video_transform.py --target all [--sessions 2] [--duration 20] [--not-live]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _refvenv import pipecat_python  # noqa: E402
from _stats import fmt, median, percentile, ratio  # noqa: E402
from webrtc_echo import Server, _read_event, free_port, tree_cpu_seconds  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
HOST = "127.0.0.1"
VIDEO_SPEC = ROOT / "pipelines" / "video-transform.yaml"
THRESHOLD = 120


def bench_spec(out_dir: Path, live: bool, video_in_format: str = "RGB") -> Path:
    """``video-transform.yaml`` reduced to camera -> ``video.edges`` -> video out, loopback ICE."""
    spec = yaml.safe_load(VIDEO_SPEC.read_text())
    spec["ice"] = {"servers": [], "host_addresses": [HOST]}
    transport = spec["transport"]
    transport.update(audio_in_enabled=False, audio_out_enabled=False, video_out_is_live=live)
    transport["video_in_format"] = video_in_format
    spec["processors"] = [{"id": "edges", "type": "video.edges", "mode": "edges", "threshold": THRESHOLD}]
    path = out_dir / f"bench-video-edges-{video_in_format}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def command(target: str, port: int, work_dir: Path, live: bool) -> list[str]:
    """How each server is started."""
    if target.startswith("ours"):
        fmt_in = "RGB" if target == "ours-rgb" else "yuv420p"
        exe = str(ROOT / ".venv" / "bin" / "pipeline-run")
        return [exe, "run", str(bench_spec(work_dir, live, fmt_in)), "--host", HOST, "--port", str(port)]
    python = pipecat_python(runner=True)
    return [python, str(BENCH_DIR / "_pipecat_video_bot.py"), "-t", "webrtc", "--host", HOST, "--port", str(port)]


@dataclass
class Result:
    """Figures for one target."""

    target: str
    sessions: int
    connected: int = 0
    window_s: float = float("nan")
    rx_fps: list[float] = field(default_factory=list)
    id_fps: list[float] = field(default_factory=list)
    sent_fps: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    unreadable: int = 0
    sizes: set[str] = field(default_factory=set)
    answer_hosts: set[str] = field(default_factory=set)
    server_cpu_s: float = float("nan")
    client_cpu_s: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def cpu_pct_per_session(self) -> float:
        """Server CPU as % of one core over the window, per session."""
        return 100.0 * self.server_cpu_s / self.window_s / self.sessions

    @property
    def client_cpu_pct(self) -> float:
        return 100.0 * self.client_cpu_s / self.window_s


async def measure(server: Server, sessions: int, duration: float, settle: float) -> Result:
    """Connect the sessions in one client process and measure one window."""
    result = Result(server.target, sessions)
    cmd = [sys.executable, str(BENCH_DIR / "_video_client.py"), "--url", server.offer_url]
    cmd += ["--sessions", str(sessions), "--duration", str(duration)]
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=ROOT
    )
    try:
        ready = await _read_event(proc, 120)
        result.connected = int(ready["connected"])
        await asyncio.sleep(settle)  # encoders, bitrate estimates and pacing settle
        cpu0, t0 = tree_cpu_seconds(server.pid), time.monotonic()
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
        await asyncio.sleep(duration)
        cpu1 = tree_cpu_seconds(server.pid)
        result.window_s = time.monotonic() - t0
        result.server_cpu_s = cpu1 - cpu0
        report = await _read_event(proc, duration + 60)
        add_report(result, report)
    finally:
        with contextlib.suppress(ProcessLookupError):
            if proc.returncode is None:
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(proc.wait(), 15)
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    return result


def add_report(result: Result, report: dict[str, Any]) -> None:
    """Fold the client's per-session figures into ``result``."""
    window = float(report["window_s"])
    result.client_cpu_s += float(report["client_cpu_s"])
    for s in report["sessions"]:
        if s["error"]:
            result.errors.append(s["error"])
            continue
        result.answer_hosts.update(s["answer_hosts"])
        result.sizes.update(s["sizes"])
        result.rx_fps.append(s["rx_frames"] / window)
        result.id_fps.append(s["rx_ids"] / window)
        result.sent_fps.append(s["sent"] / window)
        result.latency_ms.extend(s["latency_ms"])
        result.unreadable += int(s["unreadable"])


async def run_target(target: str, args: argparse.Namespace, log_dir: Path) -> Result:
    """One fresh server for ``target``, measured once."""
    port = free_port()
    cmd = command(target, port, log_dir, not args.not_live)
    server = Server(target, cmd, port, log_dir)
    print(f"[{target}] {args.sessions} session(s): {' '.join(cmd)}", file=sys.stderr, flush=True)
    try:
        server.start()
        return await measure(server, args.sessions, args.duration, args.settle)
    except Exception as exc:
        print(f"[{target}] failed: {exc}", file=sys.stderr, flush=True)
        failed = Result(target, args.sessions)
        failed.errors.append(str(exc))
        return failed
    finally:
        server.stop()
        print(f"[{target}] done; server log {server.log_path}", file=sys.stderr, flush=True)


def print_table(results: list[Result]) -> None:
    """One row per target, medians over sessions."""
    head = (
        f"{'target':>8} | {'ok':>5} | {'sent fps':>8} | {'rx fps':>6} | {'fps sustained':>13} | "
        f"{'lat med ms':>10} | {'lat p95 ms':>10} | {'unread':>6} | {'srv CPU %/sess':>14} | {'client CPU %':>12}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        print(
            f"{r.target:>8} | {r.connected:>2}/{r.sessions:<2} | {fmt(median(r.sent_fps)):>8} | "
            f"{fmt(median(r.rx_fps)):>6} | {fmt(median(r.id_fps)):>13} | {fmt(median(r.latency_ms)):>10} | "
            f"{fmt(percentile(r.latency_ms, 95)):>10} | {r.unreadable:>6} | {fmt(r.cpu_pct_per_session):>14} | "
            f"{fmt(r.client_cpu_pct):>12}"
        )
        for err in sorted(set(r.errors))[:3]:
            print(f"     error: {err[:150]}")
    for r in results:
        print(
            f"{r.target}: sizes received {', '.join(sorted(r.sizes)) or '-'}; "
            f"server candidates {', '.join(sorted(r.answer_hosts)) or '-'}"
        )


def print_ratios(ours: Result, ref: Result) -> None:
    """ours / pipecat, and the target check."""
    fps = ratio(median(ours.id_fps), median(ref.id_fps))
    cpu = ratio(ours.cpu_pct_per_session, ref.cpu_pct_per_session)
    print(f"\nratios {ours.target}/pipecat")
    print(f"  fps sustained    {fmt(fps, 2)}   (higher is better)")
    print(f"  rx fps           {fmt(ratio(median(ours.rx_fps), median(ref.rx_fps)), 2)}")
    print(f"  latency median   {fmt(ratio(median(ours.latency_ms), median(ref.latency_ms)), 2)}   (lower is better)")
    p95 = ratio(percentile(ours.latency_ms, 95), percentile(ref.latency_ms, 95))
    print(f"  latency p95      {fmt(p95, 2)}")
    print(f"  server CPU/sess  {fmt(cpu, 2)}   (lower is better)")
    met = fps == fps and cpu == cpu and fps >= 0.98 and cpu <= 0.7
    print(f"target (fps >= reference at <= 0.7x its CPU): {'met' if met else 'NOT met'}")


async def amain(args: argparse.Namespace) -> dict[str, Result]:
    """Run the selected targets and print the table."""
    targets = {"both": ["ours", "pipecat"], "all": ["ours", "ours-rgb", "pipecat"]}.get(args.target, [args.target])
    log_dir = Path(tempfile.mkdtemp(prefix="video-transform-"))
    results = {t: await run_target(t, args, log_dir) for t in targets}
    mode = "not live" if args.not_live else "live"
    print(
        f"\nvideo_transform: 640x480 camera at 30 fps -> Sobel edges -> 640x480 video out ({mode} output); "
        f"{args.sessions} session(s), window {args.duration:g} s; {os.cpu_count()} CPU(s); logs in {log_dir}"
    )
    print_table([results[t] for t in targets])
    for ours in ("ours", "ours-rgb"):
        if ours in results and "pipecat" in results:
            print_ratios(results[ours], results["pipecat"])
    return results


def main(argv: list[str] | None = None) -> None:
    """Command line entry."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--target",
        choices=["ours", "ours-rgb", "pipecat", "both", "all"],
        default="both",
        help="both: ours (yuv420p in and out) + pipecat; all: also ours-rgb (our camera input as RGB)",
    )
    parser.add_argument("--quick", action="store_true", help="5 s window, 1 s settle")
    parser.add_argument("--sessions", type=int, default=1, help="concurrent video sessions (default 1)")
    parser.add_argument("--duration", type=float, default=None, help="measured window, s (default 15)")
    parser.add_argument("--settle", type=float, default=None, help="seconds between bot-ready and the window")
    parser.add_argument("--not-live", action="store_true", help="video_out_is_live off on both servers")
    args = parser.parse_args(argv)
    args.duration = args.duration or (5.0 if args.quick else 15.0)
    args.settle = args.settle if args.settle is not None else (1.0 if args.quick else 3.0)
    asyncio.run(amain(args))


if __name__ == "__main__":
    main()
