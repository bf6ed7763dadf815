"""The lookup API's OpenAPI 3.1 document, served at ``/openapi.json``.

Tests validate real responses against these schemas, so the document cannot
drift from what the server sends.
"""

from __future__ import annotations

from typing import Any

API_VERSION = "1.0.0"

_NULLABLE_NUMBER = {"type": ["number", "null"]}
_ERROR = {
    "type": "object", "required": ["error", "message"], "additionalProperties": False,
    "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
}  # fmt: skip
_PROFILE = {
    "type": "object",
    "required": ["schema", "user_id", "seq", "segment", "segment_name", "model_version", "rules", "features",
                 "interactions", "traits", "last_event_at", "updated_at"],
    "additionalProperties": False,
    "properties": {
        "schema": {"const": 1},
        "user_id": {"type": "string"},
        "seq": {"type": "integer", "minimum": 0, "description": "events folded into the state; only grows"},
        "segment": {"type": "string", "description": "cluster segment id, or 'new' before the first"},
        "segment_name": {"type": "string"},
        "model_version": {"type": "integer", "minimum": 0},
        "rules": {"type": "array", "items": {"type": "string"}, "description": "rule segments the user is in"},
        "features": {"type": "object", "additionalProperties": _NULLABLE_NUMBER},
        "interactions": {
            "type": "array", "maxItems": 10, "description": "latest first",
            "items": {
                "type": "object", "required": ["type", "ts"], "additionalProperties": False,
                "properties": {"type": {"type": "string"}, "ts": {"type": "string", "format": "date-time"},
                               "page": {"type": "string"}, "value": {"type": "number"}},
            },
        },  # fmt: skip
        "traits": {"type": "object"},
        "last_event_at": {"type": ["string", "null"], "format": "date-time"},
        "updated_at": {"type": "string", "format": "date-time"},
    },
}
_SEGMENT = {
    "type": "object", "required": ["id", "kind", "name", "size"], "additionalProperties": False,
    "properties": {
        "id": {"type": "string"}, "kind": {"enum": ["cluster", "rule"]}, "name": {"type": "string"},
        "size": {"type": "integer", "minimum": 0, "description": "users with an unexpired profile in it"},
        "centroid": {"type": "object", "additionalProperties": {"type": "number"},
                     "description": "cluster segments: the centre in z-scores against the population"},
        "rule": {"type": "string", "description": "rule segments: the rule"},
    },
}  # fmt: skip
_SELECTION = {
    "oneOf": [{"type": "null"}, {
        "type": "object", "required": ["k", "method"],
        "description": "how the model's k, scaling and features were chosen (app/core/segments/selection.py); "
                       "null before a cluster model exists",
        "properties": {
            "k": {"type": "integer"}, "method": {"enum": ["auto", "fixed", "online"]},
            "silhouette": _NULLABLE_NUMBER, "davies_bouldin": _NULLABLE_NUMBER, "stability": _NULLABLE_NUMBER,
            "gain": _NULLABLE_NUMBER,
            "candidates": {"type": "array", "items": {"type": "object", "required": ["k"]}},
            "features": {"type": "array", "items": {"type": "string"}, "description": "the features the model reads"},
            "dropped": {"type": "object", "additionalProperties": {"type": "string"},
                        "description": "candidate features left out, with the reason"},
            "fit_version": {"type": "integer", "description": "the model version this fit was first published as; "
                            "later versions of one fit only move the segments' means"},
        }}],
}
_SEGMENTS = {
    "type": "object", "required": ["model_version", "segments"], "additionalProperties": False,
    "properties": {"model_version": {"type": "integer", "minimum": 0}, "selection": _SELECTION,
                   "segments": {"type": "array", "items": {"$ref": "#/components/schemas/Segment"}}},
}  # fmt: skip
_MEMBERS = {
    "type": "object", "required": ["segment", "users", "next_cursor"], "additionalProperties": False,
    "properties": {"segment": {"type": "string"}, "users": {"type": "array", "items": {"type": "string"}},
                   "next_cursor": {"type": ["string", "null"], "description": "null on the last page"}},
}  # fmt: skip
_DASHBOARD_SEGMENT = {
    **_SEGMENT,
    "properties": {**_SEGMENT["properties"], "size": {
        "type": "integer", "description": "users in it among this worker's states (sum over workers for the whole)"}},
}  # fmt: skip
_CHANGE_ENTRY = {
    "type": "object", "required": ["type", "ts", "user_id", "kind", "change", "segment"],
    "properties": {"type": {"const": "change"}, "ts": {"type": "string", "format": "date-time"},
                   "user_id": {"type": "string"}, "kind": {"enum": ["cluster", "rule"]},
                   "change": {"enum": ["entered", "moved", "exited"]}, "segment": {"type": "string"},
                   "segment_name": {"type": ["string", "null"]}, "previous": {"type": ["string", "null"]},
                   "previous_name": {"type": ["string", "null"]}},
}  # fmt: skip
_TRIGGER_ENTRY = {
    "type": "object", "required": ["type", "ts", "user_id", "trigger"], "additionalProperties": False,
    "properties": {"type": {"const": "trigger"}, "ts": {"type": "string", "format": "date-time"},
                   "user_id": {"type": "string"}, "trigger": {"type": "string"}},
}  # fmt: skip
_DASHBOARD = {
    "type": "object", "required": ["source", "now", "model", "segments", "history", "drifts", "recent"],
    "additionalProperties": False,
    "properties": {
        "source": {"enum": ["worker", "demo"]},
        "now": {"type": "number", "description": "the server's wall clock, epoch seconds"},
        "model": {"oneOf": [{"type": "null"}, {
            "type": "object", "required": ["version", "samples", "ts"],
            "properties": {"version": {"type": "integer"}, "samples": {"type": "integer"},
                           "ts": {"type": "string", "format": "date-time"},
                           "k": {"type": "integer", "description": "cluster segments (0: RFM cut points only)"},
                           "selection": _SELECTION,
                           "meanings": {"type": "object", "additionalProperties": {"type": "string"},
                                        "description": "the feature catalogue's meaning of each model feature"}}}]},
        "segments": {"type": "array", "items": _DASHBOARD_SEGMENT},
        "history": {"type": "array", "maxItems": 720, "description": "oldest first, one point per sample interval",
                    "items": {"type": "object", "required": ["t", "events_per_s", "lag_p50_s", "lag_p95_s", "sizes"],
                              "additionalProperties": False,
                              "properties": {"t": {"type": "number"}, "events_per_s": {"type": "number"},
                                             "lag_p50_s": _NULLABLE_NUMBER, "lag_p95_s": _NULLABLE_NUMBER,
                                             "sizes": {"type": "object", "additionalProperties": {"type": "integer"}}}}},
        "drifts": {"type": "array", "maxItems": 50, "description": "oldest first, as published on segment-drift",
                   "items": {"type": "object", "required": ["ts", "previous_version", "version"]}},
        "recent": {"type": "array", "maxItems": 100,
                   "description": "the latest 50 segment changes and 50 triggers, newest first by event time",
                   "items": {"oneOf": [_CHANGE_ENTRY, _TRIGGER_ENTRY]}},
    },
}  # fmt: skip
_STATUS = {
    "type": "object", "required": ["status"],
    "properties": {"status": {"enum": ["ok", "ready", "recovering", "failed"]},
                   "reason": {"type": "string", "description": "with failed: the output that failed"}},
}  # fmt: skip


def _json(schema: str, description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}  # fmt: skip


_ERRORS = {
    "400": _json("Error", "malformed id, cursor or limit"),
    "401": _json("Error", "missing or wrong bearer token (when SEGSTREAM_API_TOKEN is set)"),
}

DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "segstream lookup API", "version": API_VERSION,
             "description": "Profiles and segments of a segstream worker (Faust's web server, SEGSTREAM_WEB_PORT)."},
    "components": {
        "schemas": {"Error": _ERROR, "Profile": _PROFILE, "Segment": _SEGMENT, "Segments": _SEGMENTS,
                    "Members": _MEMBERS, "Status": _STATUS, "DashboardData": _DASHBOARD},
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
    },
    "security": [{"bearer": []}, {}],
    "paths": {
        "/users/{user_id}": {"get": {
            "summary": "A user's profile: from Redis, else from the user-state table",
            "parameters": [{"name": "user_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": _json("Profile", "the profile"), **_ERRORS,
                          "404": _json("Error", "no such user")},
        }},
        "/segments": {"get": {
            "summary": "Every segment: id, kind, name, size, centroid (cluster) or rule (rule), model version",
            "responses": {"200": _json("Segments", "the segments"), "401": _ERRORS["401"]},
        }},
        "/segments/{segment_id}/users": {"get": {
            "summary": "A page of a segment's users",
            "parameters": [
                {"name": "segment_id", "in": "path", "required": True, "schema": {"type": "string"}},
                {"name": "cursor", "in": "query", "schema": {"type": "string"}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                 "description": "a hint, as Redis SCAN's COUNT: a page may hold more or fewer users, "
                                "even none while next_cursor is not null"},
            ],
            "responses": {"200": _json("Members", "one page"), **_ERRORS, "404": _json("Error", "no such segment")},
        }},
        "/dashboard/data": {"get": {
            "summary": "What the live dashboard at /dashboard draws: sizes over time, throughput, lag, drifts, "
                       "recent changes and triggers",
            "responses": {"200": _json("DashboardData", "the dashboard's data"), "401": _ERRORS["401"]},
        }},
        "/healthz": {"get": {"summary": "The process is up", "security": [],
                             "responses": {"200": _json("Status", "alive")}}},
        "/readyz": {"get": {"summary": "Ready to serve: the tables have recovered", "security": [],
                            "responses": {"200": _json("Status", "ready"),
                                          "503": _json("Status", "recovering, or failed and stopping")}}},
    },
}  # fmt: skip
