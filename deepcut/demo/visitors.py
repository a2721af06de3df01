"""Who a visitor is: the client's address, as far as this server can trust it (no Gradio import).

Behind a proxy on this machine or a private network (a HuggingFace Space, a reverse proxy), the address
that proxy appended last to ``X-Forwarded-For``; the entries before it are the client's own word, which
anyone can forge. Every per-visitor rule (uploads per minute, one live stream) keys on this address.
"""

from __future__ import annotations

import ipaddress


def client_address(peer: str | None, forwarded: str | None) -> str:
    """The visitor behind a connection from ``peer`` carrying the ``X-Forwarded-For`` header ``forwarded``:
    ``peer`` itself, or the header's last hop when ``peer`` is a private (proxy) address."""
    peer = str(peer or "unknown")
    try:
        behind_proxy = ipaddress.ip_address(peer).is_private
    except ValueError:
        behind_proxy = False
    if forwarded and forwarded.strip() and behind_proxy:
        return forwarded.split(",")[-1].strip() or peer
    return peer
