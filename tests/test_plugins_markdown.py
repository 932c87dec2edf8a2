"""`pipeline-run plugins --markdown`: reference docs from the installed plugins' `Params` models."""

from __future__ import annotations

import ast
import inspect
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from pydantic import BaseModel, Field, create_model

from runner.plugins import PluginRegistry
from runner.plugins.docs import param_docs, params_table
from runner.processors.base import ProcessorParams
from runner.spec import generate_schema

CLI = str(Path(sys.executable).parent / "pipeline-run")
THROWAWAY = Path(__file__).parent / "data" / "throwaway_plugin"


def _markdown(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [CLI, "plugins", "--markdown", *args], capture_output=True, text=True, env=full_env, timeout=60
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The throwaway third-party plugin (its parameter documented by an attribute docstring), installed."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            *(sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps"),
            *("--no-build-isolation", "--no-index", "--target", str(target), str(THROWAWAY)),
        ],
        check=True,
        capture_output=True,
        cwd=tmp_path_factory.mktemp("build"),
        timeout=120,
    )
    return target


def test_markdown_of_installed_plugins_has_parameters_defaults_and_descriptions(site: Path, tmp_path: Path) -> None:
    out = tmp_path / "docs" / "plugins.md"
    written = _markdown("--out", str(out), env={"PYTHONPATH": str(site)})
    assert written.returncode == 0, written.stderr
    assert written.stdout == ""
    text = out.read_text()
    assert text == _markdown(env={"PYTHONPATH": str(site)}).stdout  # --out holds exactly what stdout gets
    for heading in ("## Processors", "## VAD analyzers", "## Event actions"):
        assert heading in text
    # a built-in (Field descriptions, bounds)
    assert "### `audio.tone`" in text
    assert "| `frequency` | `float` (> 0.0, ≤ 20000.0) | `440.0` | Tone frequency in Hz. |" in text
    assert (
        "| `duration_secs` | `float \\| null` (> 0.0) | `null` | How long to play; null = until the pipeline ends. |"
        in text
    )
    # a third-party package whose parameter is documented by the string under it
    shout = text[text.index("### `text.shout`") :]
    assert "Package `shout_plugin` 0.3.1" in shout or "Package `shout-plugin` 0.3.1" in shout
    assert "Upper-cases every TextFrame and appends a suffix." in shout
    assert '| `suffix` | `str` | `"!"` | Appended to every text. |' in shout
    # a VAD: shared thresholds with their other spelling, and an action with a required parameter
    assert "| `confidence` | `float` (≥ 0.0, ≤ 1.0) | `0.7` |" in text
    assert re.search(r"### `call`.*?\| `target` \| `str` \| \*required\* \|", text, re.S)


def test_every_installed_parameter_is_documented() -> None:
    """First-party plugins and built-ins alike: no parameter without a description."""
    text = _markdown().stdout
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    assert len(rows) > 40
    undocumented = [row for row in rows if row.rstrip().endswith("| — |")]
    assert undocumented == []


def test_the_schema_and_the_docs_share_one_description_per_field() -> None:
    registry = PluginRegistry.discover()
    definitions = generate_schema(registry)["definitions"]
    compared = 0
    for info in registry.plugins:
        params = getattr(info.obj, "Params", None)
        kind = {"processors": "processor", "vad": "vad", "actions": "action"}[info.group.rsplit(".", 1)[-1]]
        properties = definitions[f"{kind}.{info.name}"]["properties"]
        for doc in param_docs(params):
            assert properties[doc.name].get("description") == doc.description, (info.name, doc.name)
            compared += 1
    assert compared > 40


def _all_models(base: type[BaseModel]) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = []
    for sub in base.__subclasses__():
        if sub.__module__.startswith(("runner.", "pipeline_run_")) and sub not in found:
            found.append(sub)
        found += [m for m in _all_models(sub) if m not in found]
    return found


def _attribute_docstrings(cls: type) -> list[str]:
    """Names of the fields of ``cls`` that have a string right under them in its source."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return []
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    return [
        stmt.target.id
        for stmt, after in zip(body, body[1:], strict=False)
        if isinstance(stmt, ast.AnnAssign)
        and isinstance(stmt.target, ast.Name)
        and isinstance(after, ast.Expr)
        and isinstance(after.value, ast.Constant)
        and isinstance(after.value.value, str)
    ]


def test_no_model_drops_the_docstrings_under_its_fields() -> None:
    """A model whose config lacks ``use_attribute_docstrings`` loses them from the schema and docs: catch it."""
    PluginRegistry.discover()  # import every plugin's models
    models = _all_models(BaseModel)
    assert len(models) > 20
    lost = [
        f"{model.__module__}.{model.__qualname__}.{name}"
        for model in models
        for name in _attribute_docstrings(model)
        if name in model.model_fields and not model.model_fields[name].description
    ]
    assert lost == [], "set use_attribute_docstrings=True in these models' config"


def test_markdown_and_json_exclude_each_other() -> None:
    result = subprocess.run([CLI, "plugins", "--markdown", "--json"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "not allowed with" in result.stderr


def test_an_unwritable_out_is_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    result = _markdown("--out", str(blocker / "plugins.md"))
    assert result.returncode == 1 and f"cannot write {blocker / 'plugins.md'}" in result.stderr
    assert "Traceback" not in result.stderr


# -- table cells survive any text -----------------------------------------------------------


def _cells(row: str) -> list[str]:
    """Split a table row on unescaped pipes (GFM: ``\\|`` stays in its cell)."""
    assert row.startswith("| ") and row.endswith(" |")
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", row[1:-1])]


FIELD_NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True).filter(lambda n: not n.startswith("model_"))


@given(
    fields=st.dictionaries(FIELD_NAMES, st.tuples(st.text(max_size=40), st.text(max_size=40)), min_size=1, max_size=4)
)
@example(fields={"sep": ("a | b", "x|y")})
@example(fields={"ticks": ("uses `code` and ``more``", "`")})
@example(fields={"lines": ("first line\nsecond\n\nthird", "\n")})
def test_each_parameter_is_one_row_of_four_cells(fields: dict[str, tuple[str, str]]) -> None:
    model = create_model(  # type: ignore[call-overload]
        "Generated",
        __base__=ProcessorParams,
        **{
            name: (str, Field(default=default, description=description))
            for name, (description, default) in fields.items()
        },
    )
    header, rule, *rows = params_table(model)
    assert header == "| parameter | type | default | description |" and rule == "|---|---|---|---|"
    assert len(rows) == len(fields)
    for row, (name, (description, _default)) in zip(rows, fields.items(), strict=True):
        assert "\n" not in row
        cells = _cells(row)
        assert len(cells) == 4, row
        assert cells[0] == f"`{name}`" and cells[1] == "`str`"
        words = " ".join(description.split())
        assert cells[3] == (words or "—") or "`" in description, (cells[3], description)
