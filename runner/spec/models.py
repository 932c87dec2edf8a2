"""The spec's section models and the validated :class:`Spec`."""

from __future__ import annotations

import builtins
import functools
import ipaddress
import re
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, field_validator

from runner.actions.base import Action
from runner.actions.when import Condition
from runner.audio.vad import VADAnalyzer
from runner.limits import Limits
from runner.params import TransportSettings
from runner.processors.base import FrameProcessor

ID_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]*$"
_ID = re.compile(ID_PATTERN)
SECRET_KEY = re.compile(r"(password|passwd|credential|api_?key|token|secret)", re.IGNORECASE)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)


class ServerSettings(_Section):
    """The HTTP signaling server."""

    host: str = "127.0.0.1"
    """Address to listen on."""
    port: int = Field(default=7860, ge=1, le=65535)
    """TCP port to listen on."""
    cors_origins: list[str] = Field(default_factory=lambda: ["*"])
    """Origins allowed to call the API from a browser ("*" = any)."""
    max_sessions: int = Field(default=32, ge=1)
    """Concurrent peer connections; further offers are answered with 503."""
    keepalive_timeout_secs: float = Field(default=5.0, gt=0)
    """A session whose data channel sent no ping for this long is suspended (see resume_window_secs)."""
    resume_window_secs: float = Field(default=30.0, ge=0, le=3600)
    """How long a suspended session waits for the client to restart its peer connection before it ends."""
    connect_timeout_secs: float = Field(default=30.0, gt=0)
    """A peer that is not connected this long after its offer is dropped."""
    static_page: bool = True
    """Serve the test web page at /."""
    limits: Limits = Field(default_factory=Limits)
    """Bounds on everything a client controls (body size, JSON depth, offer shape, rates, ...)."""


class IceServer(_Section):
    """One STUN or TURN server."""

    urls: str | list[str]
    """stun:, stuns:, turn: or turns: URL(s)."""
    username: str | None = None
    """TURN user name."""
    credential: SecretStr | None = None
    """TURN password (masked in `pipeline-run config`)."""

    @field_validator("urls")
    @classmethod
    def _check_urls(cls, value: str | list[str]) -> str | list[str]:
        urls = [value] if isinstance(value, str) else value
        if not urls:
            raise ValueError("give at least one URL")
        for url in urls:
            scheme, sep, _ = url.partition(":")
            if not sep or scheme.lower() not in ("stun", "stuns", "turn", "turns"):
                raise ValueError(f"{url!r} is not a stun:, stuns:, turn: or turns: URL")
        return value


def _check_ip(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        raise ValueError(f"{value!r} is not an IP address") from None
    return value


class IceSettings(_Section):
    """ICE: which servers and local addresses to gather candidates from."""

    servers: list[IceServer] = Field(default_factory=list)
    """STUN/TURN servers; [] = host candidates only."""
    host_addresses: list[str] | None = None
    """Local IP addresses to gather host candidates on (null = all but loopback; 127.0.0.1 and ::1 allowed)."""
    advertised_address: str | None = None
    """Public IP to advertise in place of the host address (1:1 NAT)."""

    @field_validator("servers", mode="before")
    @classmethod
    def _no_null_servers(cls, value: Any) -> Any:
        if value is None:
            raise ValueError(
                "must be a list ([] = host candidates only); null would make aiortc add Google's STUN server"
            )
        return value

    @field_validator("host_addresses")
    @classmethod
    def _check_hosts(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [_check_ip(v) for v in value]

    @field_validator("advertised_address")
    @classmethod
    def _check_advertised(cls, value: str | None) -> str | None:
        return None if value is None else _check_ip(value)


@functools.cache
def codec_capabilities(kind: str) -> dict[str, list[tuple[int, int | None]]]:
    """aiortc's codecs of ``kind`` ("audio"/"video"): canonical name -> [(clock rate, channels)]."""
    from aiortc import RTCRtpSender  # slow import, only when codecs are given

    found: dict[str, list[tuple[int, int | None]]] = {}
    for codec in RTCRtpSender.getCapabilities(kind).codecs:
        name = codec.mimeType.split("/", 1)[1]
        if name.lower() != "rtx":
            found.setdefault(name, []).append((codec.clockRate, codec.channels))
    return found


def check_codec(kind: str, value: str) -> str:
    """Validate ``opus``, ``PCMU/8000`` or ``opus/48000/2``; returns it with aiortc's spelling of the name."""
    caps = codec_capabilities(kind)
    name, *rest = value.split("/")
    canonical = next((c for c in caps if c.lower() == name.strip().lower()), None)
    supported = ", ".join(caps)
    if canonical is None:
        raise ValueError(f"unknown {kind} codec {value!r}; aiortc supports: {supported}")
    try:
        numbers = [int(part) for part in rest]
    except ValueError:
        raise ValueError(f"{value!r}: write NAME, NAME/CLOCKRATE or NAME/CLOCKRATE/CHANNELS") from None
    if len(numbers) > 2:
        raise ValueError(f"{value!r}: write NAME, NAME/CLOCKRATE or NAME/CLOCKRATE/CHANNELS")
    variants = caps[canonical]
    if numbers and not any(
        rate == numbers[0] and (len(numbers) == 1 or (channels or 1) == numbers[1]) for rate, channels in variants
    ):
        forms = ", ".join(f"{canonical}/{r}" + (f"/{c}" if c else "") for r, c in variants)
        raise ValueError(f"{value!r} is not offered by aiortc (it has {forms})")
    return "/".join([canonical, *rest])


class CodecSettings(_Section):
    """Codec preference order, checked against what aiortc offers ([] = aiortc's own order)."""

    audio: list[Annotated[str, AfterValidator(functools.partial(check_codec, "audio"))]] = Field(default_factory=list)
    """Audio codecs, most preferred first: opus, PCMU, PCMA, G722 (optionally NAME/CLOCKRATE[/CHANNELS])."""
    video: list[Annotated[str, AfterValidator(functools.partial(check_codec, "video"))]] = Field(default_factory=list)
    """Video codecs, most preferred first: VP8, H264."""


class PipelineSettings(_Section):
    """The pipeline's own audio format and behaviour."""

    audio_in_sample_rate: int = Field(default=16000, ge=8000, le=48000)
    """Sample rate processors receive input audio at."""
    audio_out_sample_rate: int = Field(default=24000, ge=8000, le=48000)
    """Sample rate processors produce output audio at."""
    allow_interruptions: bool = True
    """User speech interrupts the bot (drops queued bot audio)."""
    enable_metrics: bool = False
    """Send RTVI ``metrics`` messages (TTFB and processing time of the STT, responder and TTS)."""


class SpecDocument(_Section):
    """The file's shape before plugin entries are checked against their plugins."""

    version: Literal[1] = 1
    server: ServerSettings = Field(default_factory=ServerSettings)
    ice: IceSettings = Field(default_factory=IceSettings)
    codecs: CodecSettings = Field(default_factory=CodecSettings)
    transport: TransportSettings = Field(default_factory=TransportSettings)
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)
    vad: dict[str, Any] | None = None
    processors: list[dict[str, Any]] = Field(default_factory=list)
    events: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)


#: Top-level keys of a spec, in file order (schema and rendering use it).
TOP_LEVEL_KEYS: tuple[str, ...] = tuple(SpecDocument.model_fields)


class _Entry(BaseModel):
    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)


class ProcessorSpec(_Entry):
    """One processor of the chain: its id, plugin name, plugin class and validated params."""

    id: str
    type: str
    plugin: builtins.type[FrameProcessor]
    params: BaseModel


class VadSpec(_Entry):
    """The VAD analyzer: plugin name, class and validated params."""

    type: str
    plugin: builtins.type[VADAnalyzer]
    params: BaseModel


class ActionSpec(NamedTuple):
    """One step of an event handler: ``(action name, action class, params)``, its ``when``
    condition if it has one, and ``otherwise=True`` for the steps of an ``otherwise:`` list."""

    action: str
    plugin: type[Action]
    params: BaseModel
    when: Condition | None = None
    otherwise: bool = False


class Spec(BaseModel):
    """A validated spec, with every plugin entry resolved to its class and params."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True, use_attribute_docstrings=True)

    version: Literal[1] = 1
    server: ServerSettings = Field(default_factory=ServerSettings)
    ice: IceSettings = Field(default_factory=IceSettings)
    codecs: CodecSettings = Field(default_factory=CodecSettings)
    transport: TransportSettings = Field(default_factory=TransportSettings)
    pipeline: PipelineSettings = Field(default_factory=PipelineSettings)
    vad: VadSpec | None = None
    processors: list[ProcessorSpec] = Field(default_factory=list)
    events: dict[str, list[ActionSpec]] = Field(default_factory=dict)
    source: str | None = None
    """The file the spec was read from."""

    def processor(self, id: str) -> ProcessorSpec:
        """The processor entry with this ``id``; raises KeyError."""
        for entry in self.processors:
            if entry.id == id:
                return entry
        raise KeyError(id)


def valid_id(value: str) -> bool:
    """True for a processor id such as ``stt`` or ``tts.main``."""
    return bool(_ID.match(value))
