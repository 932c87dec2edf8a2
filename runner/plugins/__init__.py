"""Plugins: processors, VAD analyzers and actions found through Python entry points."""

from runner.plugins.discovery import (
    GROUPS,
    PluginInfo,
    PluginRegistry,
    UnknownPluginError,
)

__all__ = ["GROUPS", "PluginInfo", "PluginRegistry", "UnknownPluginError"]
