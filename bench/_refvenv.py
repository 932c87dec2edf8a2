"""Find (or build) the Python interpreter that has the reference, Pipecat, installed.

Order: ``$PIPECAT_PYTHON`` if set; else ``bench/.venv-pipecat`` (created on first use with
``python3 -m venv`` + ``pip install`` of the pinned version). Pipecat never goes into our venv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

PIPECAT_VERSION = "1.14.0"
PIPECAT_REQUIREMENT = f"pipecat-ai[webrtc,runner]=={PIPECAT_VERSION}"
BENCH_DIR = Path(__file__).resolve().parent
DEFAULT_VENV = BENCH_DIR / ".venv-pipecat"


def _has_pipecat(python: str, runner: bool = False) -> bool:
    code = "import importlib.metadata as m; print(m.version('pipecat-ai'))"
    if runner:  # the development runner (``-t webrtc``) needs these too
        code = "import fastapi, uvicorn, multipart; " + code
    probe = subprocess.run(
        [python, "-c", code],
        capture_output=True,
        text=True,
        check=False,
    )
    return probe.returncode == 0 and probe.stdout.strip() == PIPECAT_VERSION


def pipecat_python(*, runner: bool = False, create: bool = True) -> str:
    """Path of a python with ``pipecat-ai==PIPECAT_VERSION``; builds ``bench/.venv-pipecat`` if needed.

    ``runner``: also require the development runner's dependencies (fastapi, uvicorn, python-multipart).
    """
    override = os.environ.get("PIPECAT_PYTHON")
    if override:
        if not _has_pipecat(override, runner):
            extra = " with the runner extra (fastapi, uvicorn, python-multipart)" if runner else ""
            raise SystemExit(f"PIPECAT_PYTHON={override} has no pipecat-ai=={PIPECAT_VERSION}{extra}")
        return override
    python = DEFAULT_VENV / "bin" / "python"
    if python.exists() and _has_pipecat(str(python), runner):
        return str(python)
    if not create:
        raise SystemExit(f"no reference venv at {DEFAULT_VENV}; set PIPECAT_PYTHON")
    base = shutil.which("python3") or sys.executable
    print(f"creating reference venv {DEFAULT_VENV} ({PIPECAT_REQUIREMENT}) ...", file=sys.stderr)
    subprocess.run([base, "-m", "venv", str(DEFAULT_VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    # python-multipart: the 1.14 runner crashes at route setup without it (PROTOCOL.md §7).
    subprocess.run([*pip, PIPECAT_REQUIREMENT, "python-multipart"], check=True)
    return str(python)
