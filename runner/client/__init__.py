"""The Python client: connect to a SmallWebRTC server like the JS client, play and record media."""

from runner.client.client import ClientError, ClientStats, RequestError, SmallWebRTCClient
from runner.client.reconnect import ReconnectPolicy
from runner.client.signalling import HttpStatusError, OfferEndpoint, SignallingError, StartBotError

__all__ = [
    "ClientError",
    "ClientStats",
    "HttpStatusError",
    "OfferEndpoint",
    "ReconnectPolicy",
    "RequestError",
    "SignallingError",
    "SmallWebRTCClient",
    "StartBotError",
]
