"""Policy serving: a websocket server and client, wire-compatible with openpi's policy protocol.

    policy_server.py   PolicyServer (+ CLI: python -m AlphaBrain.deployment.policy_server --run-dir ... --checkpoint last)
    policy_client.py   PolicyClient, wait_for_server
    policy.py          load_policy(run_dir, checkpoint) -> InferencePolicy with infer(obs) -> {"actions", ...}
    msgpack_numpy.py   the msgpack + numpy encoding both ends use (no pickle)

Protocol and request/reply keys: docs/deployment/policy_server.md.

Names are imported lazily: `python -m AlphaBrain.deployment.policy_server` must not find the
module already imported by this package, and the client must not pull in torch.
"""

from __future__ import annotations

from AlphaBrain.utils.lazy import lazy_attributes

_EXPORTS = {
    "DEFAULT_PORT": "policy_server",
    "PolicyServer": "policy_server",
    "PortInUseError": "ports",
    "PolicyClient": "policy_client",
    "PolicyServerError": "policy_client",
    "PolicyServerUnavailable": "policy_client",
    "wait_for_server": "policy_client",
    "InferencePolicy": "policy",
    "load_policy": "policy",
}

__all__ = [
    "DEFAULT_PORT",
    "InferencePolicy",
    "PolicyClient",
    "PolicyServer",
    "PolicyServerError",
    "PolicyServerUnavailable",
    "PortInUseError",
    "load_policy",
    "wait_for_server",
]


__getattr__ = lazy_attributes(__name__, _EXPORTS)
