"""Read a worker's /metrics in tests: one sample, or the segment sizes."""

from __future__ import annotations

import urllib.request
from collections import Counter

from prometheus_client.parser import text_string_to_metric_families


def scrape(worker) -> str:
    port = worker.env["SEGSTREAM_WEB_PORT"]
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of the sample ``name{labels}`` (exactly those labels), or None."""
    for family in text_string_to_metric_families(text):
        for item in family.samples:
            if item.name == name and item.labels == labels:
                return item.value
    return None


def segment_users(text: str) -> Counter:
    """``segstream_segment_users`` as {(kind, segment): users}, empty segments left out."""
    sizes = Counter()
    for family in text_string_to_metric_families(text):
        if family.name == "segstream_segment_users":
            for item in family.samples:
                if item.value:
                    sizes[item.labels["kind"], item.labels["segment"]] = int(item.value)
    return sizes
