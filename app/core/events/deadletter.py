"""Dead letters: what the DLQ topic and ``dlq.jsonl`` carry for a rejected input.

>>> from app.core.events.decode import Reject
>>> letter = dead_letter(Reject("not JSON: ...", b"\\xff{"), {"topic": "clicks", "partition": 2, "offset": 17})
>>> letter["reason"], letter["source"], letter["payload_b64"]
('not JSON: ...', {'topic': 'clicks', 'partition': 2, 'offset': 17, 'index': None}, '/3s=')
>>> big = dead_letter(Reject("message is 2000000 bytes, over the limit of 1048576", b"x" * 2_000_000), {})
>>> big["payload_bytes"], len(base64.b64decode(big["payload_b64"])), big["payload_sha256"][:12], "payload" in big
(2000000, 131072, 'be8889d3b889', False)
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

from app.core.events.decode import Reject

DLQ_SCHEMA = 1
# A dead letter carries at most this much of its payload, so that it stays far below the
# producer's 1 MiB record limit: a 450 KB bad message used to make a 1.4 MB dead letter
# (base64 and text), whose send failed and took the rest of its batch down with it.
MAX_PAYLOAD_BYTES = 128 * 1024


def dead_letter(reject: Reject, source: dict[str, Any]) -> dict[str, Any]:
    """The DLQ record: the original bytes (base64, lossless), the reason and the source position.

    ``source`` is ``{"topic", "partition", "offset"}`` from Kafka or ``{"file", "line"}``
    from a replay; the position of the event inside a JSON array is added as ``index``.
    A payload over ``MAX_PAYLOAD_BYTES`` is cut to its first ``MAX_PAYLOAD_BYTES``, with
    its whole length (``payload_bytes``) and SHA-256 (``payload_sha256``), and without
    the text copy; the whole message is still at its source position.
    """
    payload = reject.payload
    letter: dict[str, Any] = {
        "schema": DLQ_SCHEMA,
        "reason": reject.reason,
        "source": {**source, "index": reject.index},
        "payload_b64": base64.b64encode(payload[:MAX_PAYLOAD_BYTES]).decode("ascii"),
    }
    if len(payload) > MAX_PAYLOAD_BYTES:
        letter.update(payload_bytes=len(payload), payload_sha256=hashlib.sha256(payload).hexdigest())
        return letter
    try:
        letter["payload"] = payload.decode("utf-8")
    except UnicodeDecodeError:
        pass
    return letter
