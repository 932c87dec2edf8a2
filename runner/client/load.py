"""Running client sessions for a fixed time: one (``pipeline-run connect``) or many at once (load mode).

:func:`run_session` connects one :class:`SmallWebRTCClient`, plays its source, records and
measures the bot's audio, sends the requested messages and reports a :class:`SessionResult`.
:func:`run_load` runs N sessions concurrently in this process; with the default tone-burst
source it times echoed burst onsets (echo latency) and received-audio continuity.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from aiortc import MediaStreamTrack

from runner.client.client import ClientError, SmallWebRTCClient
from runner.client.media import (
    AudioMeter,
    SilenceSource,
    TestPatternSource,
    ToneSource,
    VideoFileSource,
    VideoRecorder,
    WavRecorder,
    WavSource,
    echo_latencies,
)
from runner.client.reconnect import ReconnectPolicy


@dataclass
class SessionOptions:
    """What one client does (the ``connect`` command's flags)."""

    url: str
    start: bool = False
    seconds: float = 10.0
    play: str | None = None
    loop: bool = False
    tone: float | None = None
    tone_bursts: bool = False
    audio: bool = True
    video: str | None = None
    test_pattern: bool = False
    screen: bool = False
    record: str | None = None
    record_video: str | None = None
    send_messages: list[Any] = field(default_factory=list)
    requests: list[tuple[str, Any]] = field(default_factory=list)
    audio_codec: str | None = None
    video_codec: str | None = None
    host_addresses: list[str] | None = None
    ice_servers: list[str] = field(default_factory=list)
    trickle: bool = True
    ready_timeout_secs: float = 10.0
    request_timeout_secs: float = 5.0


@dataclass
class SessionResult:
    """Outcome and figures of one session."""

    client: int = 0
    ok: bool = False
    error: str | None = None
    final_state: str = "disconnected"
    disconnect_reason: str | None = None
    pc_id: str | None = None
    connected_ms: float | None = None
    bot_ready_ms: float | None = None
    audio_seconds: float = 0.0
    audio_rms_dbfs: float | None = None
    audio_gaps: int = 0
    continuity: float = 0.0
    echo_ms: list[float] = field(default_factory=list)
    messages_in: int = 0
    messages_out: int = 0
    reconnects: int = 0
    responses: list[Any] = field(default_factory=list)
    negotiated_audio: list[str] = field(default_factory=list)
    negotiated_video: list[str] = field(default_factory=list)
    video_frames: int = 0

    @property
    def echo_median_ms(self) -> float | None:
        """Median echo latency, when bursts came back."""
        return statistics.median(self.echo_ms) if self.echo_ms else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (infinite levels become None)."""
        out = asdict(self)
        out["echo_median_ms"] = self.echo_median_ms
        return out


@dataclass
class LiveStatus:
    """What a progress display shows while a session runs."""

    state: str = "disconnected"
    elapsed: float = 0.0
    level_dbfs: float = float("-inf")
    audio_seconds: float = 0.0
    reconnects: int = 0


def _audio_source(opts: SessionOptions) -> MediaStreamTrack | None:
    if not opts.audio:
        return None
    if opts.play:
        return WavSource(opts.play, loop=opts.loop)
    if opts.tone_bursts:
        return ToneSource(opts.tone or 1000.0, burst_secs=0.1, period_secs=1.0)
    if opts.tone:
        return ToneSource(opts.tone)
    return SilenceSource()


def _video_source(opts: SessionOptions) -> MediaStreamTrack | None:
    if opts.video:
        return VideoFileSource(opts.video)
    if opts.test_pattern:
        return TestPatternSource()
    return None


async def run_session(
    opts: SessionOptions,
    index: int = 0,
    on_status: Callable[[LiveStatus], None] | None = None,
) -> SessionResult:
    """Connect, run for ``opts.seconds`` after bot-ready, disconnect; never raises for network trouble."""
    result = SessionResult(client=index)
    audio = _audio_source(opts)
    video = _video_source(opts)
    meter = AudioMeter()
    wav = WavRecorder(opts.record) if opts.record else None
    vrec = VideoRecorder(opts.record_video) if opts.record_video else None
    client = SmallWebRTCClient(
        ice_servers=[{"urls": u} for u in opts.ice_servers],
        host_addresses=opts.host_addresses,
        audio_track=audio,
        video_track=video,
        enable_screen=opts.screen,
        audio_codec=opts.audio_codec,
        video_codec=opts.video_codec,
        trickle=opts.trickle,
        ready_timeout_secs=opts.ready_timeout_secs,
        reconnect=ReconnectPolicy(),
    )
    client.add_audio_sink(meter.feed)
    if wav is not None:
        client.add_audio_sink(lambda samples, _at: wav.write(samples))
    if vrec is not None:
        client.add_video_sink(vrec.write)
    status = LiveStatus()
    t0 = time.monotonic()

    def report() -> None:
        if on_status is not None:
            status.state = client.state
            status.elapsed = time.monotonic() - t0
            status.level_dbfs = meter.level_dbfs()
            status.audio_seconds = meter.seconds
            status.reconnects = client.stats.reconnects
            on_status(status)

    client.add_event_handler("state-changed", lambda _c, _s: report())
    try:
        if opts.start:
            await client.start_bot_and_connect(opts.url)
        else:
            await client.connect(opts.url)
        for message in opts.send_messages:
            client.send_app_message(message)
        for msg_type, data in opts.requests:
            try:
                result.responses.append(await client.send_client_message(msg_type, data, opts.request_timeout_secs))
            except ClientError as exc:
                result.responses.append({"error": str(exc)})
        deadline = time.monotonic() + opts.seconds
        while time.monotonic() < deadline and client.state in ("connected", "ready"):
            report()
            await asyncio.sleep(min(0.25, max(0.0, deadline - time.monotonic())))
        # a bot that leaves on its own (peerLeft) is not a failure; giving up reconnecting is
        result.ok = client.stats.bot_ready_ms is not None and client.state != "error"
        if not result.ok:
            result.error = client.disconnect_reason or f"ended in state {client.state}"
    except ClientError as exc:
        result.error = str(exc)
    finally:
        if client.state not in ("disconnected", "error"):
            await client.disconnect("client finished")
        report()
        for track in (audio, video):
            if track is not None:
                track.stop()
        if wav is not None:
            wav.close()
        if vrec is not None:
            vrec.close()
            result.video_frames = vrec.frames
    _fill_result(result, client, meter, audio)
    return result


def _fill_result(result: SessionResult, client: SmallWebRTCClient, meter: AudioMeter, audio: Any) -> None:
    stats = client.stats
    result.final_state = client.state
    result.disconnect_reason = client.disconnect_reason
    result.pc_id = client.pc_id
    result.connected_ms = _round(stats.connected_ms)
    result.bot_ready_ms = _round(stats.bot_ready_ms)
    result.audio_seconds = round(meter.seconds, 3)
    level = meter.rms_dbfs
    result.audio_rms_dbfs = round(level, 1) if level != float("-inf") else None
    result.audio_gaps = meter.gaps
    result.continuity = round(meter.continuity(), 3)
    if isinstance(audio, ToneSource) and audio.burst is not None:
        result.echo_ms = [round(x * 1000.0, 1) for x in echo_latencies(audio.onsets, meter.onsets)]
    result.messages_in = stats.messages_in
    result.messages_out = stats.messages_out
    result.reconnects = stats.reconnects
    result.negotiated_audio = stats.negotiated_audio
    result.negotiated_video = stats.negotiated_video


def _round(value: float | None) -> float | None:
    return round(value, 1) if value is not None else None


@dataclass
class LoadSummary:
    """Medians over the clients of a load run."""

    clients: int
    succeeded: int
    bot_ready_ms_median: float | None
    connected_ms_median: float | None
    echo_ms_median: float | None
    continuity_median: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def summarize(results: list[SessionResult]) -> LoadSummary:
    """Medians over the successful clients."""
    good = [r for r in results if r.ok]
    return LoadSummary(
        clients=len(results),
        succeeded=len(good),
        bot_ready_ms_median=_median([r.bot_ready_ms for r in good if r.bot_ready_ms is not None]),
        connected_ms_median=_median([r.connected_ms for r in good if r.connected_ms is not None]),
        echo_ms_median=_median([m for r in good if (m := r.echo_median_ms) is not None]),
        continuity_median=_median([r.continuity for r in good]),
    )


async def run_load(
    opts: SessionOptions,
    clients: int,
    on_status: Callable[[int, LiveStatus], None] | None = None,
    stagger_secs: float = 0.05,
) -> list[SessionResult]:
    """Run ``clients`` sessions at once (``stagger_secs`` apart); tone bursts unless --play.

    Recordings get the client number appended (``out-0.wav``, ``out-1.wav``...).
    """
    burst_opts = replace(opts, tone_bursts=opts.play is None)

    def numbered(path: str | None, i: int) -> str | None:
        if path is None:
            return None
        p = Path(path)
        return str(p.with_name(f"{p.stem}-{i}{p.suffix}"))

    async def one(i: int) -> SessionResult:
        await asyncio.sleep(i * stagger_secs)
        own = replace(burst_opts, record=numbered(opts.record, i), record_video=numbered(opts.record_video, i))

        def status(s: LiveStatus) -> None:
            if on_status is not None:
                on_status(i, s)

        return await run_session(own, index=i, on_status=status)

    return list(await asyncio.gather(*(one(i) for i in range(clients))))


def results_json(results: list[SessionResult]) -> str:
    """Machine-readable report: per-client results plus the summary."""
    body = {"summary": summarize(results).to_dict(), "clients": [r.to_dict() for r in results]}
    return json.dumps(body, indent=2)
