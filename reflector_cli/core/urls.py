"""What of a URL may be printed: scheme, host and port. Credentials, paths and queries often
carry secrets (`https://user:token@host/v1?key=…`), so logs and errors never show them."""

from __future__ import annotations

from urllib.parse import urlsplit


def endpoint_label(url: str) -> str:
    u = urlsplit(url)
    try:
        port = u.port
    except ValueError:  # a malformed port is still no reason to print the rest
        port = None
    return f"{u.scheme}://{u.hostname or '?'}" + (f":{port}" if port else "")
