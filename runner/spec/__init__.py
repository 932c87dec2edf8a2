"""The YAML spec: pydantic models, loading with ``${VAR}`` interpolation, JSON Schema.

registry = PluginRegistry.discover()
spec = load_spec("pipelines/echo.yaml", registry)      # raises SpecError listing every problem
spec.processors[0].plugin, spec.processors[0].params
print(render_config(spec))                            # resolved, secrets masked
"""

from runner.spec.errors import SpecError, SpecIssue, format_path
from runner.spec.loader import builtin_events, load_spec, parse_spec, render_config, spec_data
from runner.spec.models import (
    ActionSpec,
    CodecSettings,
    IceServer,
    IceSettings,
    PipelineSettings,
    ProcessorSpec,
    ServerSettings,
    Spec,
    SpecDocument,
    VadSpec,
)
from runner.spec.schema import SCHEMA_PATH, check_schema_file, find_schema_path, generate_schema, schema_text
from runner.spec.yamlio import SpecLoader

__all__ = [
    "SCHEMA_PATH",
    "ActionSpec",
    "CodecSettings",
    "IceServer",
    "IceSettings",
    "PipelineSettings",
    "ProcessorSpec",
    "ServerSettings",
    "Spec",
    "SpecDocument",
    "SpecError",
    "SpecIssue",
    "SpecLoader",
    "VadSpec",
    "builtin_events",
    "check_schema_file",
    "find_schema_path",
    "format_path",
    "generate_schema",
    "load_spec",
    "parse_spec",
    "render_config",
    "schema_text",
    "spec_data",
]
