"""The live dashboard in headless Chromium (tests/browser_harness.py), as ``segstream demo`` and a worker serve it.

The page must load, draw every chart from the data it fetched, list the segment
profiles and the recent outputs, load nothing from elsewhere, and log no console error.
The screenshots are kept as test artefacts: ``dashboard-demo.png`` and ``dashboard-worker.png`` in
``$SEGSTREAM_ARTIFACTS``, else in ``<repo>/.artifacts/``, and a copy in the test's tmp_path.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from app.core.segments.learner import DriftEvent
from tests.browser_harness import Browser
from tests.kafka_harness import ROOT, SEGSTREAM, free_port, produce, wait_until_consumed

# The demo is seeded (seed 7), so its output is fixed. Its default run has a drift (its shift
# raises order values), so that the drift timeline has a marker to draw (1,000 users and 60,000 events have none).
DEMO_ARGS = ["--users", "2000", "--events", "100000"]
CHARTS = ["chart-cluster-sizes", "chart-rule-sizes", "chart-throughput", "chart-lag", "chart-drift"]
URL_LINE = re.compile(rb"dashboard: (http://127\.0\.0\.1:\d+/dashboard)")
HOLD_LINE = b"dashboard still up at"
# What the page shows, read at one instant; each tab of the recent table is clicked in turn,
# the default one ("change") last so the screenshot shows it.
READ_PAGE = """(() => {
  const rows = (view) => {
    document.querySelector(`#recent-tabs [data-view=${view}]`).click();
    return document.querySelectorAll("#recent tbody tr:not(:has(.empty-note))").length;
  };
  return {
    data: window.segstreamDashboard.data,
    points: Object.fromEntries([...document.querySelectorAll("[data-points]")]
      .map((e) => [e.id, Number(e.dataset.points)])),
    profiles: document.querySelectorAll("#profiles .profile").length,
    recent_rows: {trigger: rows("trigger"), all: rows("all"), change: rows("change")},
    loaded: performance.getEntriesByType("resource").map((e) => e.name),
    status: document.getElementById("status").dataset.state,
  };
})()"""


@pytest.fixture
def demo_dashboard(tmp_path: Path) -> Iterator[str]:
    """The URL of a ``segstream demo --hold`` that has finished its run; the demo is stopped afterwards."""
    log_path = tmp_path / "demo.log"
    command = [SEGSTREAM, "demo", *DEMO_ARGS, "--out", str(tmp_path / "out"),
               "--dashboard-port", str(free_port()), "--hold"]  # fmt: skip
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    try:
        # Opened after the run, the page shows the demo's final, seeded state: its content is fixed.
        yield _wait_for_run(process, log_path, timeout=120)
    finally:
        process.terminate()  # the demo exits 0 on SIGTERM while it holds the dashboard
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _wait_for_run(process: subprocess.Popen, log_path: Path, timeout: float) -> str:
    """The dashboard URL the demo printed, once the demo says its run is over and the page stays up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        output = log_path.read_bytes()
        url = URL_LINE.search(output)
        if url and HOLD_LINE in output:
            return url.group(1).decode()
        if process.poll() is not None:
            pytest.fail(f"segstream demo exited with {process.returncode}:\n{output.decode(errors='replace')[-3000:]}")
        time.sleep(0.2)
    output = log_path.read_text(errors="replace")[-3000:]
    pytest.fail(f"segstream demo did not finish its run within {timeout}s:\n{output}")


def artifacts_dir() -> Path:
    path = Path(os.environ.get("SEGSTREAM_ARTIFACTS") or ROOT / ".artifacts")
    path.mkdir(parents=True, exist_ok=True)
    return path


@dataclass
class Seen:
    """What the page showed: its data, what each chart drew, its rows, what it loaded, its errors."""

    data: dict
    points: dict[str, int]
    profiles: int
    recent_rows: dict[str, int]  # tab ("change", "trigger", "all") -> rows listed
    loaded: list[str]
    status: str
    errors: list[str]


async def open_dashboard(url: str, screenshot_name: str, tmp_path: Path) -> Seen:
    """Load ``url`` in headless Chromium, wait for two renders, and read the page; the screenshot is kept."""
    async with Browser() as browser:
        page = await browser.new_page(width=1400, height=1000)
        await page.goto(url)
        try:
            await page.wait_for("window.segstreamDashboard && window.segstreamDashboard.renders >= 2", timeout=30)
            # One evaluation: JavaScript runs it to the end, so no re-render (every 2 s) falls between reads.
            seen = await page.evaluate(READ_PAGE)
            return Seen(**seen, errors=page.errors)
        finally:
            # Kept whatever the outcome: the picture is what explains a failure.
            screenshot = artifacts_dir() / screenshot_name
            await page.screenshot(screenshot)
            shutil.copy(screenshot, tmp_path / screenshot_name)


def assert_every_chart_draws_its_data(seen: Seen, url: str) -> None:
    assert seen.errors == [], f"console errors: {seen.errors}"
    assert seen.status == "live"
    data, points = seen.data, seen.points

    clusters = [s for s in data["segments"] if s["kind"] == "cluster"]
    rules = [s for s in data["segments"] if s["kind"] == "rule"]
    profile_charts = {f"profile-{s['id']}" for s in clusters}
    assert set(points) == set(CHARTS) | profile_charts
    assert all(n > 0 for n in points.values()), f"charts with nothing drawn: {points}"

    # Each chart draws what the data holds: one point per non-null value, one marker per drift.
    history = data["history"]
    assert points["chart-cluster-sizes"] == _size_points(history, clusters)
    assert points["chart-rule-sizes"] == _size_points(history, rules)
    assert points["chart-throughput"] == sum(p["events_per_s"] is not None for p in history)
    assert points["chart-lag"] == sum((p["lag_p50_s"] is not None) + (p["lag_p95_s"] is not None) for p in history)
    assert points["chart-drift"] == len(data["drifts"])
    for segment in clusters:
        assert points[f"profile-{segment['id']}"] == len(segment["centroid"])

    assert seen.profiles == len(clusters) > 0
    recent = data["recent"]
    assert seen.recent_rows == {"change": sum(item["type"] == "change" for item in recent),
                                "trigger": sum(item["type"] == "trigger" for item in recent), "all": len(recent)}
    assert seen.recent_rows["change"] > 0 and seen.recent_rows["trigger"] > 0

    origin = url.removesuffix("/dashboard")
    assert seen.loaded and all(u.startswith(origin + "/dashboard/") for u in seen.loaded), seen.loaded


@pytest.mark.timeout(240)
async def test_the_demo_dashboard_draws_every_chart_from_its_data_without_console_errors(demo_dashboard, tmp_path):
    seen = await open_dashboard(demo_dashboard, "dashboard-demo.png", tmp_path)
    assert seen.data["source"] == "demo"
    assert_every_chart_draws_its_data(seen, demo_dashboard)


@pytest.mark.timeout(300)
def test_the_worker_dashboard_draws_the_traffic_it_processed(start_worker, tmp_path):
    """The same page on a real worker: simulated clicks through Kafka, drift from the learner included."""
    worker = start_worker()
    simulate = [SEGSTREAM, "simulate", *DEMO_ARGS, "--seed", "7", "--to-kafka", "--topic", worker.topic("clicks"),
                "--broker", "kafka://127.0.0.1:9092"]  # fmt: skip
    subprocess.run(simulate, check=True, capture_output=True)
    wait_until_consumed(worker, worker.topic("clicks"))
    # ADWIN may or may not fire on this much traffic; a drift published as the learner publishes
    # them makes the timeline's content known (the learner's detection is tested on its own).
    drift = DriftEvent(ts=1767225600.0, samples=4000, previous_version=4, version=5, baseline_distance=1.3,
                       drifted_distance=1.5)  # fmt: skip
    asyncio.run(produce(worker.topic("segment-drift"), [(None, orjson.dumps(drift.to_dict()))]))
    url = f"http://127.0.0.1:{worker.env['SEGSTREAM_WEB_PORT']}/dashboard"

    def missing() -> list[str]:  # the learner's model and drift have reached this worker, a sample holds traffic
        body = orjson.loads(urllib.request.urlopen(url + "/data", timeout=10).read())
        has = {"model": body["model"], "drift": body["drifts"], "throughput": [p for p in body["history"]
                                                                              if p["events_per_s"]]}  # fmt: skip
        return [name for name, value in has.items() if not value]

    deadline = time.monotonic() + 60
    while lacking := missing():
        assert time.monotonic() < deadline, f"/dashboard/data has no {lacking} after 60 s"
        time.sleep(0.5)
    seen = asyncio.run(open_dashboard(url, "dashboard-worker.png", tmp_path))
    assert seen.data["source"] == "worker"
    assert drift.to_dict() in seen.data["drifts"]
    assert_every_chart_draws_its_data(seen, url)
    assert not worker.errors(), worker.errors()


def _size_points(history: list[dict], segments: list[dict]) -> int:
    return sum(p["sizes"].get(s["id"]) is not None for p in history for s in segments)


@pytest.mark.timeout(240)
def test_with_a_token_the_page_asks_for_it_then_draws_with_it(start_worker, tmp_path):
    worker = start_worker(SEGSTREAM_API_TOKEN="s3cret")
    url = f"http://127.0.0.1:{worker.env['SEGSTREAM_WEB_PORT']}/dashboard"

    async def visit() -> tuple[dict, list[str], dict, list[str]]:
        async with Browser() as browser:
            page = await browser.new_page()
            await page.goto(url)  # no token: the data answers 401, and the page says what to do
            await page.wait_for("document.getElementById('status').dataset.state === 'error'", timeout=30)
            refused = await page.evaluate(
                "({status: document.getElementById('status').textContent,"
                " banner: document.getElementById('banner').textContent,"
                " hidden: document.getElementById('banner').hidden})"
            )
            refused_errors = list(page.errors)
            await page.evaluate("window.location.hash = 'token=s3cret'")  # polling resumes with the token
            await page.wait_for("window.segstreamDashboard && window.segstreamDashboard.renders >= 2", timeout=30)
            accepted = await page.evaluate(
                "({status: document.getElementById('status').dataset.state,"
                " source: window.segstreamDashboard.data.source,"
                " hidden: document.getElementById('banner').hidden})"
            )
            return refused, refused_errors, accepted, page.errors[len(refused_errors):]

    refused, refused_errors, accepted, later_errors = asyncio.run(visit())
    assert "Not authorised" in refused["status"] and not refused["hidden"]
    assert "/dashboard#token=" in refused["banner"]
    # The browser logs the refused request itself; nothing else went wrong.
    assert refused_errors and all("401" in error for error in refused_errors), refused_errors
    assert accepted == {"status": "live", "source": "worker", "hidden": True}
    assert later_errors == []
