"""Dead letters: what the DLQ topic and ``dlq.jsonl`` carry for a rejected input.

>>> from app.core.events import Reject
>>> letter = dead_letter(Reject("not JSON: ...", b"\\xff{"), {"topic": "clicks", "partition": 2, "offset": 17})
>>> letter["reason"], letter["source"], letter["payload_b64"]
('not JSON: ...', {'topic': 'clicks', 'partition': 2, 'offset': 17, 'index': None}, '/3s=')
"""

from __future__ import annotations

import base64
from typing import Any

from app.core.events import Reject

DLQ_SCHEMA = 1


def dead_letter(reject: Reject, source: dict[str, Any]) -> dict[str, Any]:
    """The DLQ record: the original bytes (base64, lossless), the reason and the source position.

    ``source`` is ``{"topic", "partition", "offset"}`` from Kafka or ``{"file", "line"}``
    from a replay; the position of the event inside a JSON array is added as ``index``.
    """
    letter: dict[str, Any] = {
        "schema": DLQ_SCHEMA,
        "reason": reject.reason,
        "source": {**source, "index": reject.index},
        "payload_b64": base64.b64encode(reject.payload).decode("ascii"),
    }
    try:
        letter["payload"] = reject.payload.decode("utf-8")
    except UnicodeDecodeError:
        pass
    return letter
