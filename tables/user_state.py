"""``user_to_state``: one value per user (feature state + membership), written once per batch.

Declared with ``use_partitioner=True`` so the agent can write it after a
``take`` batch; that relies on clicks being keyed by user_id with the default
(murmur2) partitioner, the same one the changelog producer uses.
"""

from __future__ import annotations

from app.main import app, settings

user_to_state = app.Table(
    "user_to_state",
    partitions=settings.partitions,
    key_type=bytes,
    value_type=bytes,
    key_serializer="raw",
    value_serializer="raw",
    use_partitioner=True,
    help="Per-user feature state and segment membership (tables.codecs.encode_state).",
)
