"""Commands of the web side (interfaces §2): `apikey create|list|revoke` for the event API, and `serve`.

    billing apikey create --customer acme-health --source platform/eu-west   # prints the key, once
    billing serve --host 127.0.0.1 --port 8000                              # waitress, not a debug server
"""

from __future__ import annotations

from billing.commands.db import database
from billing.contracts import InputError, UsageError
from billing.output import OK, say


def cmd_apikey_create(args) -> int:
    from audit.log import record
    from billing.commands.portal import cli_actor
    from billing.refusals import refusal_text
    from identity.apikeys import create_api_key
    from ledger.contracts import UnknownContract

    who = cli_actor()
    with database() as (_, sessions):
        try:
            with sessions.begin() as session:
                issued = create_api_key(session, args.customer, args.source)
                record(session, who, "apikey.create", f"apikey:{issued.row.prefix}",
                       details={"customer": issued.row.customer, "source": issued.row.source})
        except UnknownContract as exc:
            raise InputError(f"no API key created: {refusal_text(exc.refusal)}") from None
        except ValueError as exc:
            raise UsageError(f"--source: {exc}") from None
    print(issued.key)
    say(f"API key {issued.row.prefix} for customer '{issued.row.customer}', source '{issued.row.source}': "
        "keep it now, it is shown only this once (the database keeps only its hash)")
    return OK


def cmd_apikey_list(args) -> int:
    from identity.apikeys import list_api_keys

    with database() as (_, sessions):
        with sessions() as session:
            keys = list_api_keys(session, args.customer)
    for key in keys:
        state = f"revoked {key.revoked_at:%Y-%m-%d %H:%M} UTC" if key.revoked_at else "live"
        print(f"{key.prefix}  {key.customer}  {key.source}  created {key.created_at:%Y-%m-%d %H:%M} UTC  {state}")
    if not keys:
        say("no API keys" + (f" for customer '{args.customer}'" if args.customer else ""))
    return OK


def cmd_apikey_revoke(args) -> int:
    from audit.log import record
    from billing.commands.portal import cli_actor
    from identity.apikeys import revoke_api_key

    who = cli_actor()
    with database() as (_, sessions):
        with sessions.begin() as session:   # an unknown prefix is a refusal, said by billing/cli.py
            key = revoke_api_key(session, args.prefix)
            record(session, who, "apikey.revoke", f"apikey:{key.prefix}",
                   details={"customer": key.customer, "source": key.source})
    print(f"{key.prefix}: revoked at {key.revoked_at:%Y-%m-%d %H:%M:%S} UTC ({key.customer}, {key.source})")
    return OK


def cmd_serve(args) -> int:
    import gc

    from waitress import serve

    from admin_app import create_app
    from billing.serving import refusals, start_metrics
    from settings.environment import UnknownEnvironment
    from storage import db, schema

    try:
        app = create_app({"MAX_CONTENT_LENGTH": args.max_body_bytes} if args.max_body_bytes else None)
    except (UnknownEnvironment, RuntimeError) as exc:
        raise UsageError(str(exc)) from None
    url = app.config["DATABASE_URL"]
    try:   # refuse to start on a database the app cannot use, rather than answer 503 to every request
        engine = db.connect(url)
        try:
            schema.require_current(engine)
            problems = refusals(app, engine)
        finally:
            engine.dispose()
    except db.DatabaseUnavailable as exc:
        raise UsageError(str(exc)) from None
    if problems:
        raise UsageError("refusing to serve: " + "; ".join(problems))
    metrics = start_metrics(app)
    say(f"billing: serving on http://{args.host}:{args.port} with {args.threads} threads "
        f"(environment {app.config['BILLING_ENVIRONMENT'].name}, database {db.shown(url)}"
        f"{f', metrics on {metrics}' if metrics else ''}); Ctrl-C stops")
    # waitress reads a whole body before the app sees it: it refuses (413, in plain text) bodies far over the
    # limit, so a client cannot make it spool gigabytes; the app answers the merely oversize ones, in JSON
    limit = app.config["MAX_CONTENT_LENGTH"]
    bounded = {"max_request_body_size": 4 * limit} if limit else {}
    # The app is built: what it holds is kept out of the garbage collector's passes, and a pass waits for 50,000
    # new objects rather than 700 (a request of the event API makes tens of thousands, nearly all freed when it
    # ends); else the passes take some 15% of the event API's CPU (bench/README.md)
    gc.freeze()
    gc.set_threshold(50_000)
    serve(app, host=args.host, port=args.port, threads=args.threads, **bounded,
          **proxying(app.config["BILLING_ENVIRONMENT"]))
    return OK


def proxying(env) -> dict:
    """waitress's settings for the environment's proxy: it takes the client's address and scheme from the
    X-Forwarded-* headers of the trusted proxy's connections only, and clears those headers from any other, so
    `request.remote_addr` (the audit log's address, the sign-in throttle's) is the client's and cannot be forged."""
    if not (env.trusted_proxies and env.trusted_proxy):
        return {"clear_untrusted_proxy_headers": True}
    return {"trusted_proxy": env.trusted_proxy, "trusted_proxy_count": env.trusted_proxies,
            "trusted_proxy_headers": {"x-forwarded-for", "x-forwarded-proto"},
            "clear_untrusted_proxy_headers": True}


def register(commands) -> None:
    apikey = commands.add_parser("apikey", help="API keys for the event API")
    apikey_commands = apikey.add_subparsers(dest="apikey_command", required=True, metavar="COMMAND")
    create = apikey_commands.add_parser("create", help="create a key for one customer and event source; "
                                                       "prints it once")
    create.add_argument("--customer", required=True, metavar="CONTRACT_ID")
    create.add_argument("--source", required=True, metavar="SOURCE", help="the CloudEvents source it may post")
    create.set_defaults(run=cmd_apikey_create)
    listing = apikey_commands.add_parser("list", help="every key: prefix, customer, source, created, revoked")
    listing.add_argument("--customer", metavar="CONTRACT_ID")
    listing.set_defaults(run=cmd_apikey_list)
    revoke = apikey_commands.add_parser("revoke", help="revoke the key with this prefix")
    revoke.add_argument("prefix", metavar="PREFIX")
    revoke.set_defaults(run=cmd_apikey_revoke)

    serve = commands.add_parser("serve", help="serve the web app (event API and portal) with waitress")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--threads", type=int, default=8, help="worker threads (default 8)")
    serve.add_argument("--max-body-bytes", type=int, metavar="BYTES",
                       help="the largest request body taken (default 5 MiB); larger ones are answered 413")
    serve.set_defaults(run=cmd_serve)
