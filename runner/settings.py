"""Runtime settings that may override the spec: CLI flags > environment > YAML > defaults."""

from __future__ import annotations

from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict


class RunnerSettings(BaseSettings):
    """Values from ``PIPELINE_RUN_*`` environment variables (e.g. ``PIPELINE_RUN_PORT=9000``)."""

    model_config = SettingsConfigDict(env_prefix="PIPELINE_RUN_", extra="ignore")

    host: str | None = None
    port: int | None = None
    log_level: str = "info"
    log_format: Literal["auto", "console", "json"] = "auto"
    max_sessions: int | None = None
