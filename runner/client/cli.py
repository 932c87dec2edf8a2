"""``pipeline-run connect URL``: connect a Python client to a bot, play, record, measure, report.

Exit status: 0 success (connected and bot-ready; for ``--clients`` all clients), 1 failure
(could not connect, no bot-ready, HTTP error, gave up reconnecting), 2 usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import logging
import math
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import structlog
from aiortc import RTCRtpSender
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from runner.client.load import LiveStatus, SessionOptions, SessionResult, results_json, run_load, run_session, summarize
from runner.client.sdp import CodecNotOfferedError


class UsageError(ValueError):
    """Bad combination of flags or unreadable input file."""


def add_connect_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``connect`` flags to ``parser``."""
    parser.add_argument("url", help="offer URL (…/api/offer) or, with --start, a /start endpoint")
    parser.add_argument("--start", action="store_true", help="URL is a /start endpoint (startBotAndConnect)")
    mic = parser.add_mutually_exclusive_group()
    mic.add_argument("--play", metavar="FILE", help="microphone = this audio file (resampled to 48 kHz)")
    mic.add_argument("--tone", metavar="HZ", type=float, help="microphone = a sine tone")
    mic.add_argument("--no-audio", action="store_true", help="no microphone track (transceiver still created)")
    mic.add_argument(
        "--bursts", action="store_true", help="microphone = 100 ms tone bursts every second; reports echo latency"
    )
    parser.add_argument("--loop", action="store_true", help="loop --play instead of silence at its end")
    cam = parser.add_mutually_exclusive_group()
    cam.add_argument("--video", metavar="FILE", help="camera = this video file")
    cam.add_argument("--test-pattern", action="store_true", help="camera = moving colour bars")
    parser.add_argument("--screen", action="store_true", help="add the screen-share transceiver (sendonly)")
    parser.add_argument("--record", metavar="OUT.wav", help="record the bot's audio to a WAV file")
    parser.add_argument("--record-video", metavar="FILE", help="record the bot's video (.mp4, .webm, or a PNG dir)")
    parser.add_argument(
        "--send-message", metavar="JSON", action="append", default=[], help="app message sent after bot-ready"
    )
    parser.add_argument(
        "--request", metavar="TYPE[=JSON]", action="append", default=[], help="RTVI client-message; waits for answer"
    )
    parser.add_argument("--audio-codec", metavar="CODEC", help='offer only this audio codec, e.g. "PCMU/8000"')
    parser.add_argument("--video-codec", metavar="CODEC", help='offer only this video codec, e.g. "VP8/90000"')
    parser.add_argument("--seconds", type=float, default=10.0, help="how long to stay after bot-ready (default 10)")
    parser.add_argument(
        "--host-address",
        metavar="IP",
        action="append",
        default=None,
        help="local address ICE gathers from (repeatable; default 127.0.0.1 for a loopback URL, else all)",
    )
    parser.add_argument("--ice-server", metavar="URL", action="append", default=[], help="STUN/TURN URL (repeatable)")
    parser.add_argument("--no-trickle", action="store_true", help="put candidates in the offer instead of PATCHing")
    parser.add_argument("--ready-timeout", type=float, default=10.0, help="seconds to wait for bot-ready")
    parser.add_argument("--clients", type=int, default=1, help="load mode: run N clients at once")
    parser.add_argument("--json", action="store_true", help="machine-readable report on stdout")
    parser.add_argument("--quiet", action="store_true", help="no live progress line")


def options_from_args(args: argparse.Namespace) -> SessionOptions:
    """Validate the flags; raises :class:`UsageError`."""
    if args.seconds < 0:
        raise UsageError("--seconds must be >= 0")
    if args.clients < 1:
        raise UsageError("--clients must be >= 1")
    for path in (args.play, args.video):
        if path and not Path(path).is_file():
            raise UsageError(f"no such file: {path}")
    if args.record_video and Path(args.record_video).suffix.lower() not in (".mp4", ".webm", ".mkv", ""):
        raise UsageError("--record-video needs .mp4, .webm, .mkv or a directory name for PNG frames")
    for kind, codec in (("audio", args.audio_codec), ("video", args.video_codec)):
        if codec and codec != "default" and not any(name.startswith(codec) for name in local_codecs(kind)):
            raise UsageError(f"{kind} codec {codec!r} matches nothing offered ({', '.join(local_codecs(kind))})")
    parsed = urlparse(args.url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise UsageError(f"URL must be http(s)://host[:port]/path, got {args.url!r}")
    hosts = args.host_address
    if hosts:
        for host in hosts:
            try:
                ipaddress.ip_address(host)
            except ValueError:
                raise UsageError(f"--host-address {host!r} is not an IP address") from None
    elif _is_loopback(parsed.hostname):
        hosts = ["127.0.0.1"]
    messages = []
    for raw in args.send_message:
        try:
            messages.append(json.loads(raw))
        except ValueError as exc:
            raise UsageError(f"--send-message is not JSON: {raw!r} ({exc})") from None
    return SessionOptions(
        url=args.url,
        start=args.start,
        seconds=args.seconds,
        play=args.play,
        loop=args.loop,
        tone=args.tone,
        tone_bursts=args.bursts,
        audio=not args.no_audio,
        video=args.video,
        test_pattern=args.test_pattern,
        screen=args.screen,
        record=args.record,
        record_video=args.record_video,
        send_messages=messages,
        requests=[_parse_request(r) for r in args.request],
        audio_codec=args.audio_codec,
        video_codec=args.video_codec,
        host_addresses=hosts,
        ice_servers=list(args.ice_server),
        trickle=not args.no_trickle,
        ready_timeout_secs=args.ready_timeout,
    )


def local_codecs(kind: str) -> list[str]:
    """The rtpmap encodings this client offers for ``kind`` (``"opus/48000/2"``, ``"PCMU/8000"``...)."""
    names = []
    for cap in RTCRtpSender.getCapabilities(kind).codecs:
        channels = f"/{cap.channels}" if (cap.channels or 1) > 1 else ""
        name = f"{cap.mimeType.split('/', 1)[1]}/{cap.clockRate}{channels}"
        if not name.startswith("rtx") and name not in names:
            names.append(name)
    return names


def _parse_request(raw: str) -> tuple[str, Any]:
    msg_type, sep, payload = raw.partition("=")
    if not msg_type:
        raise UsageError(f"--request needs a type: {raw!r}")
    if not sep:
        return msg_type, None
    try:
        return msg_type, json.loads(payload)
    except ValueError:
        raise UsageError(f"--request payload is not JSON: {payload!r}") from None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _fmt_db(value: float | None) -> str:
    return "-inf" if value is None or math.isinf(value) else f"{value:.1f}"


def _fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _status_line(status: LiveStatus, seconds: float) -> Text:
    return Text.assemble(
        ("● ", "green" if status.state in ("connected", "ready") else "yellow"),
        (f"{status.state:<13}", "bold"),
        f" {status.elapsed:5.1f}/{seconds:g} s   audio in {status.audio_seconds:5.1f} s",
        f"   level {_fmt_db(status.level_dbfs):>6} dBFS",
        f"   reconnects {status.reconnects}" if status.reconnects else "",
    )


def print_summary(console: Console, result: SessionResult) -> None:
    """Human summary of one session."""
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("result", "[green]ok[/]" if result.ok else f"[red]failed[/]: {escape(result.error or '')}")
    table.add_row("pc_id", str(result.pc_id))
    table.add_row("connected", f"{_fmt_ms(result.connected_ms)} ms")
    table.add_row("bot-ready", f"{_fmt_ms(result.bot_ready_ms)} ms")
    table.add_row(
        "codecs", f"audio {','.join(result.negotiated_audio) or '-'}  video {','.join(result.negotiated_video) or '-'}"
    )
    table.add_row("audio received", f"{result.audio_seconds:.2f} s, RMS {_fmt_db(result.audio_rms_dbfs)} dBFS")
    table.add_row("messages", f"in {result.messages_in}, out {result.messages_out}")
    table.add_row("reconnects", str(result.reconnects))
    if result.responses:
        table.add_row("responses", json.dumps(result.responses))
    if result.echo_ms:
        table.add_row("echo latency", f"median {_fmt_ms(result.echo_median_ms)} ms over {len(result.echo_ms)} bursts")
    if result.video_frames:
        table.add_row("video recorded", f"{result.video_frames} frames")
    if result.disconnect_reason and result.disconnect_reason != "client finished":
        table.add_row("ended", escape(result.disconnect_reason))
    console.print(table)


def print_load(console: Console, results: list[SessionResult]) -> None:
    """Per-client table plus medians."""
    table = Table(title="clients", caption="conn: channel open, ready: bot-ready, gaps: arrival holes > 100 ms")
    for name in ("#", "ok", "conn ms", "ready ms", "echo ms", "audio s", "contin.", "gaps", "reconn"):
        table.add_column(name, justify="right")
    for r in results:
        table.add_row(
            str(r.client),
            "yes" if r.ok else f"[red]no[/] {escape(r.error or '')}",
            _fmt_ms(r.connected_ms),
            _fmt_ms(r.bot_ready_ms),
            _fmt_ms(r.echo_median_ms),
            f"{r.audio_seconds:.1f}",
            f"{r.continuity:.3f}",
            str(r.audio_gaps),
            str(r.reconnects),
        )
    console.print(table)
    s = summarize(results)
    console.print(
        f"[bold]{s.succeeded}/{s.clients} ok[/]  median connected {_fmt_ms(s.connected_ms_median)} ms  "
        f"bot-ready {_fmt_ms(s.bot_ready_ms_median)} ms  echo {_fmt_ms(s.echo_ms_median)} ms  "
        f"continuity {s.continuity_median if s.continuity_median is not None else '-'}"
    )


async def _run(args: argparse.Namespace, opts: SessionOptions) -> int:
    console = Console(stderr=args.json)
    show_live = not args.quiet and not args.json and console.is_terminal
    if args.clients > 1:
        states: dict[int, LiveStatus] = {}
        live = Live(Text("starting…"), console=console, refresh_per_second=4, transient=True)
        with live if show_live else contextlib.nullcontext():

            def on_load(i: int, status: LiveStatus) -> None:
                states[i] = status
                if show_live:
                    ready = sum(1 for s in states.values() if s.state in ("connected", "ready"))
                    elapsed = max((s.elapsed for s in states.values()), default=0.0)
                    live.update(Text(f"{ready}/{args.clients} clients connected   {elapsed:5.1f} s"))

            results = await run_load(opts, args.clients, on_load)
        if args.json:
            print(results_json(results))
        else:
            print_load(console, results)
        return 0 if all(r.ok for r in results) else 1
    if show_live:
        with Live(Text("initializing"), console=console, refresh_per_second=4, transient=True) as live:
            result = await run_session(opts, on_status=lambda s: live.update(_status_line(s, opts.seconds)))
    else:
        result = await run_session(opts)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        print_summary(console, result)
    return 0 if result.ok else 1


def run_connect(args: argparse.Namespace) -> int:
    """Entry point of ``pipeline-run connect``; returns the exit status."""
    try:
        opts = options_from_args(args)
    except UsageError as exc:
        print(f"pipeline-run connect: {exc}", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_run(args, opts))
    except CodecNotOfferedError as exc:
        print(f"pipeline-run connect: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 1


def main(argv: list[str] | None = None) -> int:
    """Standalone ``python -m runner.client.cli URL ...``."""
    parser = argparse.ArgumentParser(prog="pipeline-run connect", description="Connect a test client to a bot.")
    add_connect_arguments(parser)
    return run_connect(parser.parse_args(argv))


if __name__ == "__main__":
    structlog.configure(  # standalone: warnings only, on stderr (stdout carries the report)
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
    )
    raise SystemExit(main())
