"""From a validated spec to live objects: server settings and one bot per session."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, cast

import structlog

from runner.actions.base import ActionContext, ActionParams
from runner.actions.steps import Step, run_steps
from runner.audio.vad import VADParams
from runner.events import EventEmitter
from runner.params import TransportParams
from runner.pipeline import Pipeline, PipelineParams, PipelineTask
from runner.processors.base import FrameProcessor, ProcessorParams
from runner.processors.rtvi import install_rtvi_events
from runner.server import BotFactory, ServerConfig, SessionInfo
from runner.spec import Spec
from runner.webrtc import IceServer, SmallWebRTCConnection, SmallWebRTCTransport

log = structlog.get_logger("runner.build")

STATIC_DIR = Path(__file__).parent / "server" / "static"


def ice_servers(spec: Spec) -> list[IceServer]:
    """The spec's STUN/TURN servers as connection objects (secrets revealed)."""
    servers = []
    for server in spec.ice.servers:
        credential = server.credential.get_secret_value() if server.credential is not None else None
        servers.append(IceServer(urls=server.urls, username=server.username, credential=credential))
    return servers


def server_config(
    spec: Spec,
    *,
    host: str | None = None,
    port: int | None = None,
    max_sessions: int | None = None,
    host_addresses: list[str] | None = None,
) -> ServerConfig:
    """Server settings from the spec, with command-line/environment overrides applied."""
    static = STATIC_DIR if spec.server.static_page and STATIC_DIR.is_dir() else None
    return ServerConfig(
        host=host or spec.server.host,
        port=port if port is not None else spec.server.port,
        cors_origins=list(spec.server.cors_origins),
        max_sessions=max_sessions or spec.server.max_sessions,
        ice_servers=ice_servers(spec),
        host_addresses=host_addresses or spec.ice.host_addresses,
        advertised_address=spec.ice.advertised_address,
        codecs={"audio": list(spec.codecs.audio), "video": list(spec.codecs.video)},
        keepalive_timeout_secs=spec.server.keepalive_timeout_secs,
        resume_window_secs=spec.server.resume_window_secs,
        connect_timeout_secs=spec.server.connect_timeout_secs,
        limits=spec.server.limits,
        static_dir=static,
    )


def build_processors(spec: Spec) -> list[FrameProcessor]:
    """Fresh processor instances for one session, named by their spec ids."""
    return [entry.plugin.from_params(cast(ProcessorParams, entry.params), name=entry.id) for entry in spec.processors]


def build_transport(spec: Spec, connection: SmallWebRTCConnection) -> SmallWebRTCTransport:
    """The session's transport, with the spec's VAD analyzer if one is declared."""
    vad = None
    if spec.vad is not None:
        vad = spec.vad.plugin(cast(VADParams, spec.vad.params), sample_rate=spec.pipeline.audio_in_sample_rate)
    params = TransportParams(**spec.transport.model_dump(), vad_analyzer=vad)
    return SmallWebRTCTransport(webrtc_connection=connection, params=params)


def pipeline_params(spec: Spec, session_id: str | None = None) -> PipelineParams:
    return PipelineParams(
        audio_in_sample_rate=spec.pipeline.audio_in_sample_rate,
        audio_out_sample_rate=spec.pipeline.audio_out_sample_rate,
        allow_interruptions=spec.pipeline.allow_interruptions,
        session_id=session_id,
        enable_metrics=spec.pipeline.enable_metrics,
    )


def attach_event_actions(
    spec: Spec,
    emitters: Sequence[EventEmitter],
    make_context: Callable[[str, tuple[Any, ...]], ActionContext],
) -> None:
    """Run each event's declared actions (``when``/``otherwise`` applied) whenever an emitter fires it."""
    for event, entries in spec.events.items():
        steps = [
            Step(entry.plugin(cast(ActionParams, entry.params)), when=entry.when, otherwise=entry.otherwise)
            for entry in entries
        ]
        handler = _action_runner(event, steps, make_context)
        for emitter in emitters:
            if event in emitter.event_names:
                emitter.add_event_handler(event, handler)


def _action_runner(
    event: str, steps: list[Step], make_context: Callable[[str, tuple[Any, ...]], ActionContext]
) -> Callable[..., Awaitable[None]]:
    async def run_actions(_emitter: EventEmitter, *args: Any) -> None:
        await run_steps(steps, make_context(event, args))

    return run_actions


def make_bot(spec: Spec | Callable[[], Spec]) -> BotFactory:
    """The per-session coroutine the signaling server runs for every new client.

    ``spec`` may be a callable giving the spec in force (``--reload``, see
    :class:`runner.reload.SpecReloader`): each session takes the one current when it starts
    and keeps it to its end.
    """
    current = _spec_source(spec)

    async def bot(connection: SmallWebRTCConnection, session: SessionInfo) -> None:
        spec = current()
        transport = build_transport(spec, connection)
        if spec.pipeline.enable_metrics:
            connection.set_bot_capabilities({"metrics": True})
        processors = build_processors(spec)
        # RTVI events (speaking, transcripts, bot text) for clients such as the official JS one.
        chain = install_rtvi_events(processors)
        pipeline = Pipeline([transport.input(), *chain, transport.output()])
        task = PipelineTask(
            pipeline, params=pipeline_params(spec, session.session_id), name=f"session-{session.session_id}"
        )

        def context(event: str, args: tuple[Any, ...]) -> ActionContext:
            return ActionContext(
                event=event,
                args=args,
                task=task,
                send_app_message=connection.send_app_message,
                session_id=session.session_id,
                send_server_response=connection.send_server_response,
                send_error_response=connection.send_error_response,
            )

        attach_event_actions(spec, [transport, task, *processors], context)

        # A session ends with its client, whatever the spec's handlers do.
        @transport.event_handler("on_client_closed")
        async def _closed(_transport: SmallWebRTCTransport, _connection: SmallWebRTCConnection) -> None:
            await task.cancel("client closed")

        await task.run()

    return bot


def _spec_source(spec: Spec | Callable[[], Spec]) -> Callable[[], Spec]:
    if isinstance(spec, Spec):
        fixed = spec
        return lambda: fixed
    return spec


__all__ = [
    "BotFactory",
    "attach_event_actions",
    "build_processors",
    "build_transport",
    "ice_servers",
    "make_bot",
    "pipeline_params",
    "server_config",
]
