"""Deny by default: every route declares who may reach it, or nobody may.

    @bp.get("/invoices/<number>")
    @allow("finance", "customer_finance")
    def invoice(number): ...

    @bp.post("/api/v1/events")
    @api_key_route
    def ingest(): ...

    @bp.get("/login")
    @public
    def login(): ...

A request to an endpoint with no declaration is refused (403) before its view
runs, and tests/web/test_access_matrix.py fails for any registered route that
has none. Customer scoping (a customer_finance user sees one customer) is
applied in the queries of each view, not here.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import abort, current_app, request

ROLES = ("admin", "deal_desk", "finance", "customer_finance")

PUBLIC = "public"            # anyone, signed in or not (login, static assets, health)
API_KEY = "api_key"          # a machine with an API key (checked by the view's blueprint)
SIGNED_IN = "signed_in"      # any signed-in user with MFA done (logout, own profile)


@dataclass(frozen=True)
class Rule:
    kind: str                         # PUBLIC, API_KEY, SIGNED_IN or "roles"
    roles: frozenset[str] = frozenset()

    def describe(self) -> str:
        return ", ".join(sorted(self.roles)) if self.kind == "roles" else self.kind


def _declare(rule: Rule):
    def decorate(view):
        view.access_rule = rule
        return view

    return decorate


def allow(*roles: str):
    unknown = set(roles) - set(ROLES)
    if unknown or not roles:
        raise ValueError(f"allow() needs roles among {ROLES}, got {roles}")
    return _declare(Rule("roles", frozenset(roles)))


public = _declare(Rule(PUBLIC))
api_key_route = _declare(Rule(API_KEY))
signed_in = _declare(Rule(SIGNED_IN))


def rule_for(endpoint: str | None) -> Rule | None:
    if endpoint is None:
        return None
    if endpoint == "static":
        return Rule(PUBLIC)
    view = current_app.view_functions.get(endpoint)
    return getattr(view, "access_rule", None)


def check_access() -> None:
    """The app's before_request hook: refuse what is not declared, then what the user may not do."""
    if request.endpoint is None:  # 404 and 405 are Flask's to answer
        return
    rule = rule_for(request.endpoint)
    if rule is None:
        abort(403)
    if rule.kind in (PUBLIC, API_KEY):
        return
    authenticate = current_app.extensions.get("billing.authenticate")
    if authenticate is None:  # no sign-in is installed: nothing but public routes
        abort(403)
    user = authenticate()  # returns the signed-in, MFA-verified user or answers (redirect / 401) itself
    if rule.kind == SIGNED_IN:
        return
    if getattr(user, "role", None) not in rule.roles:
        abort(403)
