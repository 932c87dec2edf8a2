"""Plugin discovery: every failure is named, none stops the others."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from runner.plugins import PluginRegistry, UnknownPluginError
from runner.plugins.discovery import PROCESSORS


def _fake_dist(root: Path, dist: str, version: str, entry_points: str, module: str, source: str) -> None:
    info = root / f"{dist}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "entry_points.txt").write_text(entry_points)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (root / f"{module}.py").write_text(source)


@pytest.fixture
def plugin_path(tmp_path: Path) -> list[str]:
    good = "from runner.processors import FrameProcessor\nclass Good(FrameProcessor):\n    pass\n"
    _fake_dist(tmp_path, "good_pkg", "1.2.0", f"[{PROCESSORS}]\ntext.good = good_mod:Good\n", "good_mod", good)
    _fake_dist(
        tmp_path,
        "broken_pkg",
        "0.1",
        f"[{PROCESSORS}]\ntext.broken = broken_mod:Thing\n",
        "broken_mod",
        "import does_not_exist_anywhere\n",
    )
    _fake_dist(
        tmp_path,
        "wrong_pkg",
        "0.1",
        f"[{PROCESSORS}]\ntext.wrong = wrong_mod:NotAProcessor\n",
        "wrong_mod",
        "class NotAProcessor:\n    pass\n",
    )
    dup = "from runner.processors import FrameProcessor\nclass Dup(FrameProcessor):\n    pass\n"
    _fake_dist(tmp_path, "dup_a", "1.0", f"[{PROCESSORS}]\ntext.dup = dup_a_mod:Dup\n", "dup_a_mod", dup)
    _fake_dist(tmp_path, "dup_b", "1.0", f"[{PROCESSORS}]\ntext.dup = dup_b_mod:Dup\n", "dup_b_mod", dup)
    sys.path.insert(0, str(tmp_path))
    yield [str(tmp_path)]
    sys.path.remove(str(tmp_path))


def test_good_plugin_loads_with_package_and_version(plugin_path: list[str]) -> None:
    registry = PluginRegistry.discover(path=plugin_path)
    info = registry.ok(PROCESSORS)["text.good"]
    assert (info.package, info.version) == ("good_pkg", "1.2.0")
    assert registry.processor("text.good").__name__ == "Good"


def test_each_broken_plugin_is_named_with_its_package(plugin_path: list[str]) -> None:
    registry = PluginRegistry.discover(path=plugin_path)
    broken = {info.name: info for info in registry.broken()}
    assert "does_not_exist_anywhere" in (broken["text.broken"].error or "")
    assert broken["text.broken"].package == "broken_pkg"
    assert "not a subclass" in (broken["text.wrong"].error or "")
    assert "dup_a[text.dup]" in (broken["text.dup"].error or "")
    assert "dup_b[text.dup]" in (broken["text.dup"].error or "")


def test_using_a_broken_plugin_explains_why(plugin_path: list[str]) -> None:
    registry = PluginRegistry.discover(path=plugin_path)
    with pytest.raises(UnknownPluginError, match="broken_pkg failed to load"):
        registry.processor("text.broken")


def test_unknown_name_suggests_the_closest(plugin_path: list[str]) -> None:
    registry = PluginRegistry.discover(path=plugin_path)
    with pytest.raises(UnknownPluginError, match="did you mean 'text.good'"):
        registry.processor("text.goood")


def test_builtins_register_through_entry_points() -> None:
    registry = PluginRegistry.discover()
    assert {"passthrough", "audio.echo", "audio.tone", "audio.wav_recorder", "audio.wav_player"} <= set(
        registry.names(PROCESSORS)
    )
    assert not [p for p in registry.broken() if p.package.replace("_", "-") == "pipeline-run"]
