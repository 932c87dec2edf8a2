from __future__ import annotations

from pathlib import Path

import pytest

from runner.plugins.discovery import PluginRegistry

from .plugins import make_registry

DATA = Path(__file__).parent / "data"


@pytest.fixture
def registry() -> PluginRegistry:
    return make_registry()


@pytest.fixture
def data_dir() -> Path:
    return DATA
