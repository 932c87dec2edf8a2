"""Connection parameters are normalised like the JS transport (PROTOCOL.md §2.6, §6.1)."""

from __future__ import annotations

import pytest

from runner.client.signalling import SignallingError, resolve_connection_params


def test_plain_url_and_deprecated_keys() -> None:
    assert resolve_connection_params("http://h:1/api/offer").endpoint.url == "http://h:1/api/offer"
    assert resolve_connection_params({"webrtcUrl": "http://h/api/offer"}).endpoint.url == "http://h/api/offer"
    assert resolve_connection_params({"webrtc_url": "http://h/x"}).endpoint.url == "http://h/x"
    assert resolve_connection_params({"connectionUrl": "http://h/y"}).endpoint.url == "http://h/y"


def test_request_params_win_and_carry_headers_data_timeout() -> None:
    params = {
        "webrtcUrl": "http://ignored/api/offer",
        "webrtcRequestParams": {
            "endpoint": "http://h/api/offer",
            "headers": {"Authorization": "Bearer x"},
            "requestData": {"a": 1},
            "timeout": 5000,
        },
    }
    endpoint = resolve_connection_params(params).endpoint
    assert endpoint.url == "http://h/api/offer"
    assert endpoint.headers == {"Authorization": "Bearer x"}
    assert endpoint.request_data == {"a": 1}
    assert endpoint.timeout == 5.0


def test_start_answer_with_session_id_and_ice_config() -> None:
    answer = {"sessionId": "abc", "iceConfig": {"iceServers": [{"urls": ["turn:t:3478"], "username": "u"}]}}
    resolved = resolve_connection_params(answer, start_url="http://h:7860/start", start_headers={"X-Key": "k"})
    assert resolved.endpoint.url == "http://h:7860/sessions/abc/api/offer"
    assert resolved.endpoint.headers == {"X-Key": "k"}
    assert resolved.ice_servers == [{"urls": ["turn:t:3478"], "username": "u"}]
    assert resolved.session_id == "abc"
    templated = resolve_connection_params(
        {"session_id": "abc"}, start_url="http://h/start", offer_url_template="http://api/s/:sessionId/offer"
    )
    assert templated.endpoint.url == "http://api/s/abc/offer"


def test_relative_urls_resolve_against_the_start_url() -> None:
    resolved = resolve_connection_params({"webrtcUrl": "/api/offer"}, start_url="http://h:1/start")
    assert resolved.endpoint.url == "http://h:1/api/offer"
    with pytest.raises(SignallingError):
        resolve_connection_params({"webrtcUrl": "/api/offer"})


def test_missing_everything_is_an_error() -> None:
    with pytest.raises(SignallingError, match="no webrtcRequestParams"):
        resolve_connection_params({"fileUploadUrl": "/files"})
    with pytest.raises(SignallingError, match="endpoint"):
        resolve_connection_params({"webrtcRequestParams": {"headers": {}}})
