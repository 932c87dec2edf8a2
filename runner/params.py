"""``TransportParams``: what a transport sends and receives, with the seed's field names."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema


class TransportSettings(BaseModel):
    """The plain, YAML-expressible part of :class:`TransportParams`."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    audio_in_enabled: bool = False
    """Receive the client's microphone."""
    audio_in_sample_rate: int | None = Field(default=None, ge=8000, le=48000)
    """Rate input audio is converted to (default: the pipeline's, 16000)."""
    audio_in_channels: Literal[1, 2] = 1
    """Channels input audio is converted to."""
    audio_in_passthrough: bool = True
    """Push input audio frames downstream (off: only the VAD sees them)."""
    audio_out_enabled: bool = False
    """Send bot audio to the client."""
    audio_out_sample_rate: int | None = Field(default=None, ge=8000, le=48000)
    """Rate of the audio handed to the encoder (default: the pipeline's, 24000)."""
    audio_out_channels: Literal[1, 2] = 1
    """Channels of bot audio sent (2: stereo Opus; PCMU/PCMA/G722 are mono, so aiortc downmixes for them)."""
    audio_out_auto_silence: bool = True
    """Send silence while the bot has nothing to say (keeps RTP flowing)."""
    audio_out_end_silence_secs: float = Field(default=0.0, ge=0, le=10)
    """Silence played after a graceful end, before disconnecting."""
    video_in_enabled: bool = False
    """Receive the client's camera (and screen share)."""
    video_in_format: Literal["RGB", "BGR", "RGBA", "gray", "yuv420p"] = "RGB"
    """Pixel format incoming video frames are converted to."""
    video_in_framerate: float = Field(default=30, gt=0, le=60)
    """Highest rate at which incoming frames are passed on; extra frames are dropped."""
    video_out_enabled: bool = False
    """Send bot video on the camera transceiver."""
    video_out_width: int = Field(default=640, ge=16, le=3840)
    video_out_height: int = Field(default=480, ge=16, le=2160)
    video_out_framerate: int = Field(default=30, ge=1, le=60)
    video_out_is_live: bool = False
    """Send each frame as it comes (live) instead of repeating the last at the frame rate."""


class TransportParams(TransportSettings):
    """Transport configuration; ``vad_analyzer`` is a live object, so it is not in the spec."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    vad_analyzer: SkipJsonSchema[Any] = None
    """A :class:`runner.audio.vad.VADAnalyzer` fed with input audio, or None."""


#: Events a SmallWebRTC transport fires (handlers get the transport, then the arguments).
TRANSPORT_EVENTS: tuple[str, ...] = (
    "on_app_message",  # (message, sender_pc_id)
    "on_client_connected",  # (connection)
    "on_client_disconnected",  # (connection)
    "on_client_closed",  # (connection)
    "on_client_ready",  # (connection) after the RTVI client-ready handshake
    "on_client_message",  # (RTVI client-message: msg_type, data, request_id)
    "on_client_suspended",  # (connection, reason) the client vanished; it may restart within the resume window
    "on_client_resumed",  # (connection, how) it came back: "pings_returned" or "restart"
)
