"""Byte codecs for table values and topic payloads (orjson)."""

from __future__ import annotations

import orjson

from app.core.model import ModelSnapshot
from app.core.state import UserState


def encode_state(state: UserState) -> bytes:
    return orjson.dumps(state.to_record())


def decode_state(raw: bytes) -> UserState:
    return UserState.from_record(orjson.loads(raw))


def encode_model(snapshot: ModelSnapshot) -> bytes:
    return orjson.dumps(snapshot.to_dict())


def decode_model(raw: bytes) -> ModelSnapshot:
    return ModelSnapshot.from_dict(orjson.loads(raw))
