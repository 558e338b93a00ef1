"""`reflector doctor` checks for Hatchet: the token's claims against the configured addresses."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from reflector_cli.core.config import Settings


def decode_token(token: str) -> dict[str, Any]:
    """The JWT payload (claims) of a Hatchet API token; raises ValueError if malformed."""
    import base64

    parts = token.strip().split(".")
    if len(parts) != 3:
        raise ValueError("not a JWT (expected three dot-separated parts)")
    body = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(body))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"payload is not base64 JSON ({exc})") from None
    if not isinstance(claims, dict):
        raise ValueError("payload is not a JSON object")
    return claims


def _host_port(addr: str, default_port: int) -> tuple[str, int] | None:
    """(host, port) of `host:port` or of a URL; None when unparsable."""
    from urllib.parse import urlsplit

    try:
        if "://" in addr:
            u = urlsplit(addr)
            port = u.port or (443 if u.scheme == "https" else 80)
            return (u.hostname, port) if u.hostname else None
        u = urlsplit("//" + addr)
        return (u.hostname, u.port or default_port) if u.hostname else None
    except ValueError:
        return None


def _reachable(addr: str, default_port: int, timeout_s: float) -> str | None:
    """None when a TCP connection to `addr` succeeds, else why not."""
    import socket

    hp = _host_port(addr, default_port)
    if hp is None:
        return "not a host:port or URL"
    try:
        with socket.create_connection(hp, timeout=timeout_s):
            return None
    except OSError as exc:
        return exc.strerror or type(exc).__name__


def _endpoint_check(
    name: str,
    env_var: str,
    effective: str | None,
    claimed: str | None,
    default_port: int,
    required: bool,
    timeout_s: float,
) -> dict[str, Any]:
    """Compare the address the SDK will use with the one the token embeds, and dial both."""

    def result(ok: bool, detail: str) -> dict[str, Any]:
        return {"name": name, "ok": ok, "detail": detail, "required": required}

    if not effective:
        return result(False, f"no address: set {env_var}")
    source = "from the token" if effective == claimed else f"from {env_var}"
    err = _reachable(effective, default_port, timeout_s)
    if err is None:
        note = ""
        if claimed and claimed != effective:
            note = f"; the token says {claimed}, overridden by {env_var} (fine)"
        return result(True, f"{effective} reachable ({source}){note}")
    detail = f"{effective} ({source}) does not answer: {err}"
    if claimed and claimed != effective and _reachable(claimed, default_port, timeout_s) is None:
        return result(False, f"{detail}; the token's {claimed} does: set {env_var}={claimed}")
    if effective == claimed:
        # The classic trap: a token minted inside a container names the container's address.
        detail += (
            f". The token was minted for {claimed}, which this machine cannot reach (a token "
            "made inside a container names the container's address): set "
            f"{env_var}=<host:port of the engine as seen from here>"
        )
    return result(False, detail)


def hatchet_checks(
    settings: Settings, env: dict[str, str] | None = None, timeout_s: float = 2.0
) -> list[dict[str, Any]]:
    """`reflector doctor` rows for Hatchet: the token, and the gRPC and HTTP endpoints the SDK
    will use (env overrides vs the token's claims), each dialled over TCP.

    Each row is {"name", "ok", "detail", "required"}; rows are required only when Hatchet is
    the configured provider. `env` defaults to os.environ.
    """
    import os

    env = dict(os.environ if env is None else env)
    required = settings.provider == "hatchet"

    def row(name: str, ok: bool, detail: str) -> dict[str, Any]:
        return {"name": name, "ok": ok, "detail": detail, "required": required}

    token = env.get("HATCHET_CLIENT_TOKEN", "").strip()
    if not token:
        return [row("hatchet token", False, "HATCHET_CLIENT_TOKEN is not set")]
    try:
        claims = decode_token(token)
    except ValueError as exc:
        return [row("hatchet token", False, f"HATCHET_CLIENT_TOKEN is unreadable: {exc}")]
    claimed_grpc = claims.get("grpc_broadcast_address")
    claimed_url = claims.get("server_url")
    exp = claims.get("exp")
    expired = isinstance(exp, int | float) and exp < time.time()
    stamp = datetime.fromtimestamp(exp, UTC) if isinstance(exp, int | float) else None
    when = stamp.strftime("%Y-%m-%d") if stamp else "?"
    detail = f"tenant {claims.get('sub', '?')}, expires {when}"
    if expired:
        detail = f"expired on {when}: mint a new one (scripts/hatchet-local token)"
    checks = [row("hatchet token", not expired, detail)]
    checks.append(
        _endpoint_check(
            "hatchet grpc",
            "HATCHET_CLIENT_HOST_PORT",
            env.get("HATCHET_CLIENT_HOST_PORT") or claimed_grpc,
            claimed_grpc,
            7070,
            required,
            timeout_s,
        )
    )
    checks.append(
        _endpoint_check(
            "hatchet api",
            "HATCHET_CLIENT_SERVER_URL",
            env.get("HATCHET_CLIENT_SERVER_URL") or claimed_url,
            claimed_url,
            80,
            required,
            timeout_s,
        )
    )
    return checks
