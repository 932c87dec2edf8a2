"""The one RTVI envelope module: what it builds survives JSON and reads back the same."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from hypothesis import example, given
from hypothesis import strategies as st

from runner.rtvi_protocol import NO_DATA, RTVI_LABEL, Envelope, is_rtvi, parse_rtvi, rtvi_envelope

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)


@given(msg_type=st.text(min_size=1, max_size=20), data=JSON, msg_id=st.none() | st.text(max_size=12))
@example(msg_type="server-message", data=None, msg_id=None)  # null data is sent as null, not dropped
def test_an_envelope_round_trips_through_json(msg_type: str, data: Any, msg_id: str | None) -> None:
    wire = json.loads(json.dumps(rtvi_envelope(msg_type, data, msg_id)))
    assert wire["label"] == RTVI_LABEL and "data" in wire and ("id" in wire) == (msg_id is not None)
    assert parse_rtvi(wire) == Envelope(msg_type, msg_id, data)


def test_without_data_the_key_is_left_out() -> None:
    assert rtvi_envelope("bot-interrupted") == {"label": "rtvi-ai", "type": "bot-interrupted"}
    assert rtvi_envelope("x", NO_DATA, "7") == {"label": "rtvi-ai", "type": "x", "id": "7"}


@given(message=JSON)
@example(message={"label": "other", "type": "client-ready"})
def test_anything_else_is_not_an_envelope(message: Any) -> None:
    if isinstance(message, dict) and message.get("label") == RTVI_LABEL:
        return
    assert not is_rtvi(message) and parse_rtvi(message) is None


def test_the_client_reads_envelopes_without_server_or_pipeline_code() -> None:
    code = (
        "import sys, runner.client\n"
        "bad = [m for m in sys.modules if m.startswith(('runner.server', 'runner.pipeline', 'runner.processors',"
        " 'runner.webrtc.rtvi', 'runner.webrtc.connection'))]\n"
        "print(bad)\n"
        "assert 'runner.rtvi_protocol' in sys.modules and not bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
