"""RTVI server->client events from pipeline frames (see :mod:`runner.processors.rtvi.events`)."""

from __future__ import annotations

from runner.processors.rtvi.events import RTVIEvents, RTVITap, install_rtvi_events, rtvi_event

__all__ = ["RTVIEvents", "RTVITap", "install_rtvi_events", "rtvi_event"]
