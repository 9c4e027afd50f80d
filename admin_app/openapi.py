"""The OpenAPI 3.1 document of the event API (admin_app/api.py), served at /api/v1/openapi.json.

Built here rather than kept as a file so that the statuses and media types are
the ones the view uses, and the documented body limit is the configured one.
tests/web/test_event_api.py checks real answers against these schemas.
"""

from __future__ import annotations

from ingest.pipeline import ACCEPTED, CONFLICT, DUPLICATE, REJECTED
from metering.events import ID_LENGTH, NAME_LENGTH, QUANTITY_PATTERN

SINGLE, BATCH, EITHER = "application/cloudevents+json", "application/cloudevents-batch+json", "application/json"
LATE = "late"
STATUSES = (ACCEPTED, LATE, DUPLICATE, CONFLICT, REJECTED)
FORBIDDEN = "forbidden"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str, headers: dict | None = None) -> dict:
    response = {"description": description, "content": {"application/json": {"schema": schema}}}
    if headers:
        response["headers"] = headers
    return response


EVENT = {
    "type": "object",
    "description": "A usage event: a CloudEvents 1.0 JSON object. Other attributes are allowed and ignored. "
                   "No string may hold a NUL character (\\u0000).",
    "required": ["specversion", "id", "source", "type", "time", "data"],
    "properties": {
        "specversion": {"const": "1.0"},
        "id": {"type": "string", "minLength": 1, "maxLength": ID_LENGTH},
        "source": {"type": "string", "minLength": 1, "maxLength": ID_LENGTH,
                   "description": "must be the API key's event source"},
        "type": {"type": "string", "maxLength": ID_LENGTH, "examples": ["unit.processed"]},
        "time": {"type": "string", "format": "date-time",
                 "description": "RFC 3339, with an offset or Z; digits past the microsecond are dropped, never "
                                "rounded"},
        "data": {
            "type": "object",
            "required": ["customer", "site", "category"],
            "properties": {
                "customer": {"type": "string", "minLength": 1, "maxLength": NAME_LENGTH,
                             "description": "must be the API key's customer"},
                "site": {"type": "string", "minLength": 1, "maxLength": NAME_LENGTH},
                "category": {"type": "string", "minLength": 1, "maxLength": NAME_LENGTH},
                "quantity": {
                    "description": "a non-negative decimal, as a JSON number or a string; default 1",
                    "oneOf": [{"type": "number", "minimum": 0},
                              {"type": "string", "pattern": QUANTITY_PATTERN}],
                    "default": 1,
                },
            },
        },
    },
    "examples": [{
        "specversion": "1.0", "id": "evt-000001", "source": "platform/eu-west", "type": "unit.processed",
        "time": "2026-05-03T10:15:00Z",
        "data": {"customer": "acme-health", "site": "lon-01", "category": "standard", "quantity": 1},
    }],
}

RESULT = {
    "type": "object",
    "required": ["index", "status"],
    "additionalProperties": False,
    "properties": {
        "index": {"type": "integer", "minimum": 0, "description": "the event's position in the request"},
        "id": {"type": "string", "description": "the event's id, when it could be read"},
        "source": {"type": "string", "description": "the event's source, when it could be read"},
        "status": {
            "enum": list(STATUSES),
            "description": (
                "accepted: stored and counted. late: stored and counted, but its period already has an issued "
                "invoice, so it is billed on the next open invoice as late usage of its own period. "
                "duplicate: the same (source, id) with the same content was stored before; nothing changed. "
                "conflict: the same (source, id) with other content was stored before; reported, never counted. "
                "rejected: not stored; see reason and detail."
            ),
        },
        "reason": {
            "type": "string",
            "description": f"rejected: a short category: malformed JSON, missing field, bad field, bad time, "
                           f"bad quantity, too long, unknown customer, or {FORBIDDEN} (another customer or source "
                           f"than the API key's)",
        },
        "detail": {"type": "string", "description": "rejected: what exactly is wrong; conflict: what differs"},
    },
    "if": {"properties": {"status": {"const": REJECTED}}},
    "then": {"required": ["reason", "detail"]},
}

RESULTS = {
    "type": "object",
    "required": ["results", "summary"],
    "additionalProperties": False,
    "properties": {
        "results": {"type": "array", "items": _ref("EventResult"), "description": "one per event, in order"},
        "summary": {
            "type": "object",
            "required": list(STATUSES),
            "additionalProperties": False,
            "properties": {status: {"type": "integer", "minimum": 0} for status in STATUSES},
        },
    },
}

ERROR = {
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {"error": {"type": "string", "description": "what is wrong, in one sentence"}},
}


def document(max_body_bytes: int | None) -> dict:
    limit = f"{max_body_bytes:,} bytes" if max_body_bytes else "the server's configured limit"
    error = _ref("Error")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Billing event API",
            "version": "1.0.0",
            "description": (
                "Usage events in, as CloudEvents 1.0 JSON. Identity is (source, id): re-sending an event or a "
                "whole batch is harmless, the repeats come back as duplicates. The events of one request are "
                "stored in one transaction."
            ),
        },
        "paths": {
            "/api/v1/events": {
                "post": {
                    "operationId": "postEvents",
                    "summary": "Send one usage event or a batch",
                    "security": [{"apiKey": []}],
                    "requestBody": {
                        "required": True,
                        "description": (
                            f"One event ({SINGLE}) or a JSON array of events ({BATCH}); {EITHER} takes "
                            f"either. At most {limit}. An event that does not match the schema is rejected "
                            f"on its own, in its result; the others are still taken."
                        ),
                        "content": {
                            SINGLE: {"schema": _ref("CloudEvent")},
                            BATCH: {"schema": {"type": "array", "items": _ref("CloudEvent")}},
                            EITHER: {"schema": {"oneOf": [_ref("CloudEvent"),
                                                          {"type": "array", "items": _ref("CloudEvent")}]}},
                        },
                    },
                    "responses": {
                        "200": _json(_ref("EventResults"), "Every event's result, in order. Rejected events "
                                                           "(a bad field, an unknown customer) do not change "
                                                           "the status: read each result."),
                        "400": _json(error, "The body is not JSON, not an object or an array, or was sent with "
                                            "another content type (or an array as a single event). Nothing "
                                            "was stored."),
                        "401": _json(error, "No API key, or one that is unknown or revoked. Nothing was stored.",
                                     {"WWW-Authenticate": {"schema": {"type": "string"}}}),
                        "403": _json(_ref("EventResults"), f"At least one event is for another customer or "
                                                           f"source than the API key's: those are rejected with "
                                                           f"reason {FORBIDDEN}; the other events were taken, "
                                                           f"as their results say."),
                        "413": _json(error, f"The body is over {limit}. Nothing was stored."),
                        "503": _json(error, "The database is unavailable. Nothing was stored; send again later.",
                                     {"Retry-After": {"schema": {"type": "string"}}}),
                    },
                },
            },
            "/api/v1/openapi.json": {
                "get": {
                    "operationId": "getOpenAPI",
                    "summary": "This document",
                    "security": [],
                    "responses": {"200": {"description": "The OpenAPI document",
                                          "content": {"application/json": {"schema": {"type": "object"}}}}},
                },
            },
        },
        "components": {
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "bk_<prefix>_<secret>",
                    "description": "A key from `billing apikey create --customer CONTRACT_ID --source SOURCE`, "
                                   "scoped to one customer and one event source.",
                },
            },
            "schemas": {"CloudEvent": EVENT, "EventResult": RESULT, "EventResults": RESULTS, "Error": ERROR},
        },
    }
