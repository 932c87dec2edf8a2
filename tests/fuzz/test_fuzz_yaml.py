"""Any text given as a spec: a spec, or a SpecError whose every issue says file:line:col; never a traceback."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings

from runner.cli import main
from runner.plugins import PluginRegistry
from runner.spec import SpecError
from runner.spec.loader import parse_spec
from tests.fuzz.strategies import yaml_texts

pytestmark = [pytest.mark.timeout(120), pytest.mark.filterwarnings("ignore:Generating overly large repr")]

FAST = settings(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
REGISTRY = PluginRegistry.discover()
WHERE = re.compile(r"^fuzz\.yaml(:\d+:\d+)?: ")


def check_spec_text(text: str) -> None:
    """The property: a Spec, or a SpecError listing issues that each name the file (and line:col)."""
    try:
        parse_spec(text, REGISTRY, file="fuzz.yaml", skip_env=True)
    except SpecError as exc:
        assert exc.issues
        for issue in exc.issues:
            assert WHERE.match(str(issue)), str(issue)
            assert issue.line >= 0 and issue.col >= 0
            assert "Traceback" not in issue.message


@settings(FAST, max_examples=150)
@given(text=yaml_texts())
@example(text="")
@example(text="version: 1\nprocessors: &a [*a]\n")
@example(text="a: &a [*a, *a]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b, *b]\n")
@example(text="!!python/object/apply:os.system ['true']\n")
@example(text="version: 1\n" + "[" * 5000)
@example(text="\ufeffversion: 1\x00")
def test_spec_text_gives_a_spec_or_located_issues(text: str) -> None:
    check_spec_text(text)


@settings(FAST, max_examples=8)
@given(text=yaml_texts())
@example(text='"\\r": null\n')
def test_validate_command_prints_located_issues(text: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path_factory.mktemp("spec") / "fuzz.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["validate", "--skip-env", str(path)])
    assert code in (0, 1)
    # the first line names the file; later ones may be continuations: PyYAML's messages carry
    # an indented '  in "<unicode string>"' line, and a key such as "\n" is printed raw
    lines = out.getvalue().splitlines()
    assert lines, "validate printed nothing"
    assert lines[0].startswith(str(path)) and "Traceback" not in out.getvalue()


def test_validate_on_unreadable_bytes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(b"version: 1\n\xff\xfe\x00garbage")
    assert main(["validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert str(path) in out and "Traceback" not in out
