"""The event API: `POST /api/v1/events` takes one CloudEvent or a batch of them (interfaces §1).

    POST /api/v1/events
    Authorization: Bearer bk_3f9a0c1d2e4b_…
    Content-Type: application/cloudevents-batch+json

    [{"specversion": "1.0", "id": "evt-1", "source": "platform/eu-west", …}, …]

    200 {"results": [{"index": 0, "id": "evt-1", "source": "platform/eu-west", "status": "accepted"}, …],
         "summary": {"accepted": 1, "late": 0, "duplicate": 0, "conflict": 0, "rejected": 0}}

Every event of the request comes back with its result, in order: accepted,
late (accepted, but its period already has an issued invoice), duplicate,
conflict or rejected (with a reason). A request's events are one batch of the
one ingest pipeline (ingest/pipeline.py: the batcher, then one transaction), the
one `billing ingest` uses, so re-sending a batch after a lost answer only
produces duplicates. The app keeps one `Ingestion`, so what a request learns
(time zones, whether batches are being re-sent) serves the next.

The key (identity/apikeys.py) is scoped to one customer and one event source. An
event for another customer or source is rejected with reason `forbidden`, the
others are taken, and the answer is 403 rather than 200 so that a client that
reads only the status still sees it. A body that is not JSON, not an object or
an array, nested too deeply, or sent with another content type is a 400 and
stores nothing; one over MAX_CONTENT_LENGTH is a 413, in JSON like every answer. The OpenAPI document at
/api/v1/openapi.json describes all of it (admin_app/openapi.py).
"""

from __future__ import annotations

from collections import Counter
from operator import attrgetter

import msgspec
from flask import Blueprint, Flask, Response, current_app, jsonify, request
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import RequestEntityTooLarge

from admin_app import database, openapi
from admin_app.access import api_key_route, public
from admin_app.auth import csrf
from admin_app.openapi import BATCH, EITHER, FORBIDDEN, LATE, SINGLE, STATUSES
from identity.apikeys import ApiKey, find_api_key
from ingest.pipeline import ACCEPTED, Ingestion, Outcome
from metering.events import Event, Rejection, decode_event_array, decode_json_event
from storage import db

blueprint = Blueprint("api", __name__, url_prefix="/api/v1")

INGESTION = "billing.ingestion"   # app.extensions: the app's ingest pipeline (what requests learn, kept)
_BATCH = msgspec.json.Decoder(list[msgspec.Raw])
_ENCODE = msgspec.json.Encoder().encode
_CUSTOMER_OF, _SOURCE_OF = attrgetter("data.customer"), attrgetter("source")


def init_app(app: Flask) -> None:
    app.extensions[INGESTION] = Ingestion()
    csrf.exempt(blueprint)   # the portal's CSRFProtect guards browser forms; a bearer key is no cookie


def problem(status: int, message: str, headers: dict | None = None) -> tuple[Response, int, dict]:
    return jsonify(error=message), status, headers or {}


def _unauthorized(message: str):
    return problem(401, message, {"WWW-Authenticate": 'Bearer realm="billing events"'})


@blueprint.post("/events")
@api_key_route
def post_events():
    scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return _unauthorized("send the API key as `Authorization: Bearer KEY`")
    sessions = database.session_factory()
    try:
        with sessions() as session:
            key = find_api_key(session, presented.strip())
    except DBAPIError as exc:
        return _database_failed(exc)
    if key is None:
        return _unauthorized("the API key is unknown or revoked")

    kind = request.mimetype
    if kind not in (SINGLE, BATCH, EITHER):
        return problem(400, f"send events as {SINGLE} (one event) or {BATCH} (a JSON array of events), "
                            f"not {kind or 'a body without a content type'}")
    try:
        body = request.get_data(cache=False)
    except RequestEntityTooLarge:
        limit = current_app.config["MAX_CONTENT_LENGTH"]
        return problem(413, f"the body is over the limit of {limit:,} bytes; send fewer events per request")
    try:
        decoded = _decoded_events(body, kind)
    except RecursionError:   # msgspec's own depth limit: no event nests this deep
        decoded = "the body nests JSON too deeply to be an event or a batch of events"
    if isinstance(decoded, str):
        return problem(400, decoded)

    items = _in_scope(decoded, key)
    try:
        ingestion = current_app.extensions[INGESTION]
        results = [_result(index, decoded[index], outcome) for index, _, outcome
                   in ingestion.ingest_items(sessions, items, max(1, len(items)))]
    except DBAPIError as exc:
        return _database_failed(exc)
    summary = Counter({status: 0 for status in STATUSES})
    summary.update(result["status"] for result in results)
    refused = any(result.get("reason") == FORBIDDEN for result in results)
    answer = _ENCODE({"results": results, "summary": summary})
    return Response(answer, status=403 if refused else 200, mimetype="application/json")


def _decoded_events(body: bytes, kind: str) -> list[Event | tuple[str, str]] | str:
    """The request's events, each decoded or what is wrong with it; or what is wrong with the body.

    A batch whose every element is a valid event is decoded in one call; any other, element by element."""
    text = body.lstrip()
    shape = text[:1]
    if shape not in (b"{", b"["):
        try:
            msgspec.json.decode(body)
        except msgspec.DecodeError as exc:
            return f"the body is not JSON ({exc})"
        return "the body must be one event (a JSON object) or a batch (a JSON array of events)"
    if shape == b"{" and kind == BATCH:
        return f"{BATCH} is a JSON array of events; send one event as {SINGLE}"
    if shape == b"[" and kind == SINGLE:
        return f"{SINGLE} is one event; send a JSON array of events as {BATCH}"
    if shape == b"[":
        events = decode_event_array(body)
        if events is not None:
            return events
    try:
        raws = _BATCH.decode(body) if shape == b"[" else [msgspec.json.decode(body, type=msgspec.Raw)]
    except msgspec.DecodeError as exc:
        return f"the body is not JSON ({exc})"
    return [decode_json_event(raw) for raw in raws]


def _in_scope(decoded: list[Event | tuple[str, str]], key: ApiKey) -> list[tuple[int, Event | Rejection]]:
    """The ingest items: each event the key may post, else its rejection. A batch of the key's own events,
    nearly every batch, is checked a column at a time."""
    if decoded and all(type(event) is Event for event in decoded) \
            and list(map(_CUSTOMER_OF, decoded)).count(key.customer) == len(decoded) \
            and list(map(_SOURCE_OF, decoded)).count(key.source) == len(decoded):
        return list(enumerate(decoded))
    return [(index, _one_in_scope(index, event, key)) for index, event in enumerate(decoded)]


def _one_in_scope(index: int, decoded: Event | tuple[str, str], key: ApiKey) -> Event | Rejection:
    if isinstance(decoded, tuple):
        return Rejection("request", index, *decoded)
    if decoded.data.customer != key.customer:
        return Rejection("request", index, FORBIDDEN,
                         f"the API key may post events for customer '{key.customer}', not '{decoded.data.customer}'")
    if decoded.source != key.source:
        return Rejection("request", index, FORBIDDEN,
                         f"the API key may post events of source '{key.source}', not '{decoded.source}'")
    return decoded


def _result(index: int, decoded: Event | tuple[str, str], outcome: Outcome) -> dict:
    result: dict = {"index": index}
    if isinstance(decoded, Event):
        result.update(id=decoded.id, source=decoded.source)
    result["status"] = LATE if outcome.status == ACCEPTED and outcome.late else outcome.status
    if outcome.reason:
        result["reason"] = outcome.reason
    if outcome.detail:
        result["detail"] = outcome.detail
    return result


def _database_failed(exc: DBAPIError):
    current_app.logger.error("event API: the database failed: %s", db.reason(exc))
    return problem(503, "the database is unavailable; nothing was stored, send the events again later",
                   {"Retry-After": "5"})


@blueprint.get("/openapi.json")
@public
def openapi_document():
    return jsonify(openapi.document(current_app.config["MAX_CONTENT_LENGTH"]))
