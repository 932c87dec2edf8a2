"""Runtime settings that may override the spec: CLI flags > environment > YAML > defaults.

Two kinds of ``PIPELINE_RUN_*`` variables exist:

* the flat :class:`RunnerSettings` (``PIPELINE_RUN_PORT``, ``PIPELINE_RUN_LOG_LEVEL``, ...), and
* one nested override per spec setting, pydantic-settings style, with ``__`` between levels:
  ``PIPELINE_RUN_SERVER__LIMITS__MAX_JSON_DEPTH=16``. Lists, mappings and sections take JSON
  (``PIPELINE_RUN_SERVER__CORS_ORIGINS='["https://a.example"]'``); other values are plain text
  that the spec's own models validate.

Any other ``PIPELINE_RUN_`` name is reported by :func:`unknown_variables`.
"""

from __future__ import annotations

import functools
import json
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "PIPELINE_RUN_"
#: Separates the levels of a nested setting's variable name.
NESTED = "__"
#: Spec sections whose settings have environment overrides (plugin entries have none).
SECTIONS = ("server", "ice", "codecs", "transport", "pipeline")
#: ``PIPELINE_RUN_`` variables read by tools around the runner, not settings.
OTHER_VARIABLES = ("PIPELINE_RUN_REQUIRE_BROWSER",)


class RunnerSettings(BaseSettings):
    """Values from ``PIPELINE_RUN_*`` environment variables (e.g. ``PIPELINE_RUN_PORT=9000``)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    host: str | None = None
    port: int | None = None
    log_level: str = "info"
    log_format: Literal["auto", "console", "json"] = "auto"
    max_sessions: int | None = None


@dataclass(frozen=True)
class EnvOverride:
    """One spec setting set from the environment."""

    variable: str
    #: where it goes in the spec, e.g. ``("server", "limits", "max_json_depth")``
    loc: tuple[str, ...]
    #: the value to validate (decoded JSON for lists, mappings and sections)
    value: Any
    #: the raw text, for messages
    text: str


class EnvOverrideError(ValueError):
    """A nested override whose text cannot be decoded (e.g. a list that is not JSON)."""

    def __init__(self, variable: str, loc: tuple[str, ...], message: str) -> None:
        self.variable, self.loc = variable, loc
        super().__init__(f"{variable}: {message}")


def variable_name(loc: tuple[str, ...]) -> str:
    """``("server", "port")`` -> ``PIPELINE_RUN_SERVER__PORT``."""
    return ENV_PREFIX + NESTED.join(part.upper() for part in loc)


def _unwrap(annotation: Any) -> list[Any]:
    """The alternatives of an annotation, with ``Annotated`` and ``None`` removed."""
    if typing.get_origin(annotation) is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) is typing.Union or isinstance(annotation, types.UnionType):
        return [alt for arg in typing.get_args(annotation) for alt in _unwrap(arg)]
    return [] if annotation is type(None) else [annotation]


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _is_complex(annotation: Any) -> bool:
    """True when an environment value for this type is JSON (lists, mappings, sections)."""
    origin = typing.get_origin(annotation) or annotation
    return _is_model(annotation) or origin in (list, dict, tuple, set, frozenset)


@dataclass(frozen=True)
class _Setting:
    loc: tuple[str, ...]
    json: bool
    nullable: bool
    secret: bool


def _walk(model: type[BaseModel], base: tuple[str, ...]) -> list[_Setting]:
    out: list[_Setting] = []
    for name, field in model.model_fields.items():
        loc = (*base, name)
        alternatives = _unwrap(field.annotation)
        nullable = type(None) in typing.get_args(field.annotation) or field.annotation is None
        secret = any(alt is SecretStr for alt in alternatives)
        out.append(_Setting(loc, any(_is_complex(a) for a in alternatives), nullable, secret))
        models = [a for a in alternatives if _is_model(a)]
        if len(models) == 1 and len(alternatives) == 1:
            out.extend(_walk(models[0], loc))
    return out


@functools.cache
def _settings() -> dict[str, _Setting]:
    from runner.spec.models import SpecDocument  # runner.spec imports this module

    found: list[_Setting] = []
    for section in SECTIONS:
        annotation = SpecDocument.model_fields[section].annotation
        assert isinstance(annotation, type) and issubclass(annotation, BaseModel)
        found.extend(_walk(annotation, (section,)))
    return {variable_name(s.loc): s for s in found}


def setting_variables() -> dict[str, tuple[str, ...]]:
    """Every nested override's variable name and the spec location it sets."""
    return {name: s.loc for name, s in _settings().items()}


def is_secret(variable: str) -> bool:
    """True for overrides of secret settings (their values are never shown)."""
    setting = _settings().get(variable)
    return setting is not None and setting.secret


def known_variables() -> list[str]:
    """Every ``PIPELINE_RUN_`` name the runner reads: flat settings, then nested overrides."""
    flat = [ENV_PREFIX + name.upper() for name in RunnerSettings.model_fields]
    return [*flat, *OTHER_VARIABLES, *_settings()]


def env_overrides(env: Mapping[str, str]) -> tuple[list[EnvOverride], list[EnvOverrideError]]:
    """The nested overrides set in ``env`` (sorted, parents before children) and the undecodable ones."""
    found: list[EnvOverride] = []
    errors: list[EnvOverrideError] = []
    table = _settings()
    for variable in sorted(k for k in env if k.upper() in table):
        setting = table[variable.upper()]
        text = env[variable]
        if setting.nullable and text.strip().lower() in ("null", "none"):
            found.append(EnvOverride(variable, setting.loc, None, text))
            continue
        if not setting.json:
            found.append(EnvOverride(variable, setting.loc, text, text))
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            errors.append(EnvOverrideError(variable, setting.loc, f"must be JSON ({exc.msg} at column {exc.colno})"))
            continue
        found.append(EnvOverride(variable, setting.loc, value, text))
    found.sort(key=lambda o: len(o.loc))
    return found, errors


def unknown_variables(env: Mapping[str, str]) -> list[str]:
    """One message per ``PIPELINE_RUN_`` variable the runner does not know, with a did-you-mean."""
    from runner.spec.errors import did_you_mean

    known = known_variables()
    messages = []
    for name in sorted(env):
        upper = name.upper()
        if not upper.startswith(ENV_PREFIX) or upper in known:
            continue
        hint = did_you_mean(upper, known) or (
            f" (spec settings look like {variable_name(('server', 'port'))}; see `pipeline-run config`)"
        )
        messages.append(f"unknown environment variable {name}{hint}")
    return messages
