"""Hypothesis strategies for what a hostile client puts on the data channel, shared by the tests."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

RTVI_TYPES = ["client-ready", "client-message", "disconnect-bot", "send-text", "dtmf", "bogus-type"]

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()

#: Any JSON value, nested a few levels.
json_values: st.SearchStrategy[Any] = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=16,
)

#: RTVI envelopes whose fields have any type (or are missing).
rtvi_envelopes: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {"label": st.just("rtvi-ai")},
    optional={
        "type": st.sampled_from(RTVI_TYPES) | json_values,
        "id": st.text(max_size=12) | json_values,
        "data": json_values | st.fixed_dictionaries({"t": json_values, "d": json_values}),
    },
)

#: Signalling envelopes whose payload has any shape; some are valid trackStatus messages.
signalling_envelopes: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {
        "type": st.just("signalling"),
        "message": json_values
        | st.fixed_dictionaries(
            {"type": st.just("trackStatus") | json_values},
            optional={"receiver_index": st.integers(-3, 5) | json_values, "enabled": st.booleans() | json_values},
        ),
    }
)


def nested(depth: int) -> str:
    """``[[[...]]]`` ``depth`` levels deep."""
    return "[" * depth + "]" * depth


#: Whole frames as a client could send them: text or bytes, JSON or not.
frames: st.SearchStrategy[str | bytes] = st.one_of(
    st.text(max_size=64),
    st.binary(max_size=64),
    json_values.map(json.dumps),
    rtvi_envelopes.map(json.dumps),
    signalling_envelopes.map(json.dumps),
    st.integers(1, 3000).map(nested),
    st.text(max_size=16).map(lambda s: "ping" + s),
    json_values.map(lambda v: json.dumps(v).encode()),
)
