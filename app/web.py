"""HTTP pages on Faust's web server (SEGSTREAM_WEB_PORT)."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app import metrics
from app.main import app


@app.page("/metrics")
async def prometheus_metrics(self, request):
    return self.bytes(generate_latest(metrics.registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])
