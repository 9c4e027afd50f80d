"""Cookies, secret key, response headers and the client's address: the parts of security every page shares.

Behind a load balancer the connection comes from the proxy, not the client. An
environment names how many proxies it trusts (`trusted_proxies`); with one or
more, werkzeug's ProxyFix takes the client address from that many entries from
the right of X-Forwarded-For (and the scheme from X-Forwarded-Proto), so
`request.remote_addr` (the audit log's address, the per-address sign-in limit,
the session's address) is the client's. With 0 the headers are ignored: anyone
can send them, and a forged one must not move a failed attempt onto someone
else's address.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from pathlib import Path

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)


def secret_key(app: Flask, env) -> str:
    """The environment's secret key (BILLING_SECRET_KEY), or outside production a key kept in the instance folder
    (never in the repository)."""
    if env.secret_key:
        return env.secret_key
    if env.production:
        raise RuntimeError(f"environment {env.name} needs BILLING_SECRET_KEY to be set")
    path = Path(app.instance_path) / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def configure(app: Flask, env) -> None:
    app.config.update(
        SECRET_KEY=secret_key(app, env),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=env.production,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SECURE=env.production,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=8),   # absolute lifetime of a session
        SESSION_IDLE_MINUTES=30,                          # idle timeout
    )
    if env.trusted_proxies > 0:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=env.trusted_proxies, x_proto=env.trusted_proxies)

    @app.after_request
    def headers(response):
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if env.production:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
        return response
