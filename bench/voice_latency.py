"""Voice-to-voice latency of ``pipelines/voice.yaml`` (offline stack), stage by stage.

The real signalling server runs in this process on 127.0.0.1 with a benchmark-only bot: the
spec's processors with small timestamping pass-throughs between the stages. An aiortc
client (``tests/e2e/speech.py``: the JS-client look-alike with an eSpeak microphone) says a
known phrase per turn and timestamps the bot audio it receives. Client and server share one
monotonic clock, so every stage is a plain difference:

* VAD stop     client's last voiced sample sent -> ``UserStoppedSpeakingFrame`` leaves the input
               (uplink + Silero windows + ``stop_secs``)
* STT final    -> pocketsphinx's final ``TranscriptionFrame``
* user turn    -> ``UserTurnFrame`` from ``conversation.user_turn``
* responder    -> first reply ``TextFrame`` from ``llm.rules``
* first TTS    -> first ``OutputAudioRawFrame`` from ``tts.espeak`` (first sentence synthesised)
* transport    -> first loud bot audio frame received by the client (output pacing, Opus,
               RTP, the client's decoder)

Barge-in (``--barge-ins``): while the bot tells its long story the client says a phrase;
from the client's speech onset to the VAD start at the server, to the interruption reaching
the last processor before the output, to the bot's audio at the client falling silent.

Loopback only: no ICE servers, host candidates on 127.0.0.1 on both sides.

    python bench/voice_latency.py [--turns 10] [--barge-ins 3] [--spec pipelines/voice.yaml]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: the tests.* helpers import from the root

from runner.actions.base import ActionContext  # noqa: E402
from runner.build import attach_event_actions, build_processors, build_transport, pipeline_params  # noqa: E402
from runner.frames import (  # noqa: E402
    Frame,
    FrameDirection,
    InterruptionFrame,
    OutputAudioRawFrame,
    TextFrame,
    TranscriptionFrame,
    UserStartedSpeakingFrame,
    UserStoppedSpeakingFrame,
    UserTurnFrame,
)
from runner.logs import configure_logging  # noqa: E402
from runner.pipeline import Pipeline, PipelineTask  # noqa: E402
from runner.processors.base import DOWNSTREAM, FrameProcessor  # noqa: E402
from runner.processors.rtvi import install_rtvi_events  # noqa: E402
from runner.server import SessionInfo  # noqa: E402
from runner.spec import Spec  # noqa: E402
from runner.webrtc import SmallWebRTCConnection  # noqa: E402
from tests.e2e.speech import VOICE_SPEC, VoicePeer, load_voice_spec  # noqa: E402
from tests.support.server import start_test_server  # noqa: E402

#: Phrases the voice spec's grammar recognises reliably, with short first reply sentences.
PHRASES = ("good morning", "thank you", "how are you", "hello world", "tell me a joke", "goodbye")
STAGES = ("VAD stop", "STT final", "user turn", "responder", "first TTS", "transport")


class Stamp(FrameProcessor):
    """Pass-through that notes when frames of interest go by (downstream)."""

    def __init__(self, place: str, log: list[tuple[float, str, Frame]]) -> None:
        super().__init__(name=f"stamp-{place}")
        self.place = place
        self.log = log

    async def process_frame(self, frame: Frame, direction: FrameDirection) -> None:
        if direction is DOWNSTREAM and isinstance(
            frame, UserStoppedSpeakingFrame | TranscriptionFrame | TextFrame | OutputAudioRawFrame
        ):
            self.log.append((time.monotonic(), self.place, frame))
        elif isinstance(frame, UserStartedSpeakingFrame | InterruptionFrame):
            self.log.append((time.monotonic(), self.place, frame))
        await self.push_frame(frame, direction)


def stamped_bot(spec: Spec, log: list[tuple[float, str, Frame]]) -> Any:
    """Like ``runner.build.make_bot``, with a :class:`Stamp` after the input and each processor."""

    async def bot(connection: SmallWebRTCConnection, session: SessionInfo) -> None:
        transport = build_transport(spec, connection)
        processors = build_processors(spec)
        chain: list[FrameProcessor] = [Stamp("input", log)]
        for processor in processors:
            chain += [processor, Stamp(processor.name, log)]
        pipeline = Pipeline([transport.input(), *install_rtvi_events(chain), transport.output()])
        task = PipelineTask(pipeline, params=pipeline_params(spec), name=f"bench-{session.session_id}")
        attach_event_actions(spec, [transport, task, *processors], lambda e, a: _context(task, connection, e, a))

        @transport.event_handler("on_client_closed")
        async def _closed(*_args: Any) -> None:
            await task.cancel("client closed")

        await task.run()

    return bot


def _context(task: PipelineTask, connection: SmallWebRTCConnection, event: str, args: tuple[Any, ...]) -> ActionContext:
    return ActionContext(event=event, args=args, task=task, send_app_message=connection.send_app_message)


@dataclass
class Turn:
    """One measured turn: the phrase, what was heard, and the stage boundaries (monotonic)."""

    phrase: str
    transcript: str = ""
    marks: list[float] = field(default_factory=list)

    @property
    def total(self) -> float:
        return self.marks[-1] - self.marks[0]

    def stages(self) -> list[float]:
        return [b - a for a, b in zip(self.marks, self.marks[1:], strict=False)]


def _first(log: Sequence[tuple[float, str, Frame]], after: float, place: str, kind: type[Frame]) -> float | None:
    for at, where, frame in log:
        if at > after and where == place and type(frame) is kind:
            return at
    return None


def marks_for(
    log: Sequence[tuple[float, str, Frame]], speech_end: float, heard_at: float, names: dict[str, str]
) -> list[float]:
    """Stage boundaries of the turn whose speech ended at ``speech_end``."""
    vad = _first(log, speech_end - 1.0, "input", UserStoppedSpeakingFrame)
    stt = _first(log, vad or speech_end, names["stt"], TranscriptionFrame)
    turn = _first(log, stt or speech_end, names["turn"], UserTurnFrame)
    text = _first(log, turn or speech_end, names["brain"], TextFrame)
    audio = _first(log, text or speech_end, names["tts"], OutputAudioRawFrame)
    points = [speech_end, vad, stt, turn, text, audio, heard_at]
    if any(p is None for p in points):
        raise RuntimeError(f"a stage was not observed: {points}")
    return [p for p in points if p is not None]


def stage_names(spec: Spec) -> dict[str, str]:
    """Processor ids of the stages, found by plugin type."""
    by_type = {entry.type: entry.id for entry in spec.processors}
    return {
        "stt": by_type["stt.pocketsphinx"],
        "turn": by_type["conversation.user_turn"],
        "brain": by_type["llm.rules"],
        "tts": by_type["tts.espeak"],
        "assistant": spec.processors[-1].id,
    }


@dataclass
class BargeIn:
    """One barge-in: client speech onset, server VAD start, interruption at the output, client silence."""

    marks: list[float]


async def run(spec_path: Path, turns: int, barge_ins: int) -> tuple[list[Turn], list[BargeIn]]:
    spec = load_voice_spec(spec_path)
    names = stage_names(spec)
    log: list[tuple[float, str, Frame]] = []
    server = await start_test_server(stamped_bot(spec, log), host_addresses=["127.0.0.1"], ice_servers=[])
    results: list[Turn] = []
    cuts: list[BargeIn] = []
    try:
        async with VoicePeer(server.url) as peer:
            await peer.connect()
            await peer.wait_open()
            await asyncio.sleep(1.0)  # no client-ready: no greeting, the turns have the floor
            # a warm-up turn: pocketsphinx's first utterance of a session is its least reliable
            await _turn(peer, "hello world", log, names)
            for index in range(turns):
                turn = await _turn(peer, PHRASES[index % len(PHRASES)], log, names)
                results.append(turn)
                print(
                    f"  turn {index + 1:2d} {turn.phrase!r:18} heard {turn.transcript!r:18} "
                    f"total {1000 * turn.total:4.0f} ms  " + " ".join(f"{1000 * s:4.0f}" for s in turn.stages()),
                    flush=True,
                )
            last = names["assistant"]
            for index in range(barge_ins):
                cut = await _barge_in(peer, log, last)
                cuts.append(cut)
                steps = " ".join(f"{1000 * (b - cut.marks[0]):4.0f}" for b in cut.marks[1:])
                print(f"  barge-in {index + 1}: VAD start, interruption at output, client silence (ms): {steps}")
    finally:
        await server.runner.cleanup()
    return results, cuts


async def _barge_in(peer: VoicePeer, log: list[tuple[float, str, Frame]], last: str) -> BargeIn:
    """Ask for the story, cut in 1.5 s into its audio, let the answer to the cut play out."""
    await _turn(peer, "tell me a story", log, None)
    clip = await peer.say("good morning", lead_secs=0.0, tail_secs=0.2)
    assert clip.done is not None
    await asyncio.wait_for(clip.done.wait(), 15)
    await peer.wait_heard_until(clip.onset + 1.0, within=15)
    silent = peer.silence_after(clip.onset, hold_secs=0.3)
    started = _first(log, clip.onset - 0.5, "input", UserStartedSpeakingFrame)
    interrupted = _first(log, clip.onset - 0.5, last, InterruptionFrame)
    if silent is None or started is None or interrupted is None:
        raise RuntimeError(f"barge-in not observed: {silent=} {started=} {interrupted=}")
    await _play_out(peer, clip.speech_end)
    return BargeIn([clip.onset, started, interrupted, silent])


async def _play_out(peer: VoicePeer, after: float) -> None:
    """Wait for the bot's answer after ``after`` to start and finish."""
    deadline = time.monotonic() + 15
    heard_at = None
    while heard_at is None and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
        heard_at = peer.first_speech_after(after)
    while heard_at and peer.silence_after(heard_at, hold_secs=0.6) is None and time.monotonic() < deadline + 15:  # noqa: ASYNC110
        await asyncio.sleep(0.1)


async def _turn(
    peer: VoicePeer, phrase: str, log: list[tuple[float, str, Frame]], names: dict[str, str] | None
) -> Turn:
    """Say ``phrase``; with ``names``, wait for the whole reply and read the stage marks."""
    seen = len(peer.rtvi("user-transcription"))
    clip = await peer.say(phrase, lead_secs=0.3, tail_secs=0.2)
    assert clip.done is not None
    await asyncio.wait_for(clip.done.wait(), 15)
    deadline = time.monotonic() + 15
    heard_at = None
    while heard_at is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"no reply audio for {phrase!r}")
        await asyncio.sleep(0.05)
        heard_at = peer.first_speech_after(clip.speech_end)
    if names is None:
        await asyncio.sleep(1.5)  # the caller cuts in
        return Turn(phrase)
    # let the reply play out: the next turn starts in silence
    while peer.silence_after(heard_at, hold_secs=0.6) is None and time.monotonic() < deadline + 15:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    transcripts = peer.rtvi_texts("user-transcription")[seen:]
    turn = Turn(phrase, transcript=transcripts[0] if transcripts else "")
    turn.marks = marks_for(log, clip.speech_end, heard_at, names)
    return turn


def report_barge_ins(cuts: list[BargeIn]) -> None:
    if not cuts:
        return
    print(f"\nbarge-in, {len(cuts)} cuts (ms from the client's speech onset; medians)")
    for index, label in enumerate(("VAD start at the server", "interruption at the output", "bot silent at client")):
        value = statistics.median(c.marks[index + 1] - c.marks[0] for c in cuts)
        print(f"  {label:<28} {1000 * value:5.0f}")
    print("  target: bot silent at the client < 100 ms")


def report(results: list[Turn]) -> None:
    totals = [t.total for t in results]
    total = statistics.median(totals)
    print(f"\nvoice-to-voice latency, {len(results)} turns (end of user speech -> first bot audio at the client)")
    print(f"{'stage':<12}| {'median ms':>9} | {'share':>6}")
    print(f"{'-' * 12}|{'-' * 11}|{'-' * 7}")
    for index, name in enumerate(STAGES):
        value = statistics.median(t.stages()[index] for t in results)
        print(f"{name:<12}| {1000 * value:9.0f} | {100 * value / total:5.0f}%")
    print(f"{'total':<12}| {1000 * total:9.0f} | {'100%':>6}")
    print(f"min {1000 * min(totals):.0f} ms, max {1000 * max(totals):.0f} ms; target: median < 600 ms")
    misheard = [t for t in results if t.transcript != t.phrase]
    if misheard:
        print("misheard: " + ", ".join(f"{t.phrase!r}->{t.transcript!r}" for t in misheard))
    print("(stage medians are taken separately, so they need not add up to the total median)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--turns", type=int, default=10, help="measured turns (default 10)")
    parser.add_argument("--barge-ins", type=int, default=3, help="barge-in measurements (default 3)")
    parser.add_argument("--spec", type=Path, default=VOICE_SPEC, help="voice spec (default pipelines/voice.yaml)")
    args = parser.parse_args(argv)
    configure_logging("warning")
    print(f"spec {args.spec}; stage columns: {', '.join(STAGES)}")
    results, cuts = asyncio.run(run(args.spec, args.turns, args.barge_ins))
    report(results)
    report_barge_ins(cuts)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
