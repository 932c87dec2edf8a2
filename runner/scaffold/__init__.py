"""Plugin scaffolding: ``pipeline-run new plugin NAME`` writes a ready distribution."""

from runner.scaffold.generate import (
    GROUP_OF,
    KINDS,
    NAME_PATTERN,
    Kind,
    PluginNames,
    ScaffoldError,
    plugin_names,
    render_plugin,
    scaffold_plugin,
    taken_names,
    write_plugin,
)

__all__ = [
    "GROUP_OF",
    "KINDS",
    "NAME_PATTERN",
    "Kind",
    "PluginNames",
    "ScaffoldError",
    "plugin_names",
    "render_plugin",
    "scaffold_plugin",
    "taken_names",
    "write_plugin",
]
