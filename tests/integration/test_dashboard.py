"""The live dashboard in headless Chromium (tests/browser_harness.py), as ``segstream demo`` serves it.

The page must load, draw every chart from the data it fetched, list the segment
profiles and the recent outputs, load nothing from elsewhere, and log no console error.
The screenshot is kept as a test artefact: ``dashboard-demo.png`` in
``$SEGSTREAM_ARTIFACTS``, else in ``<repo>/.artifacts/``, and a copy in the test's tmp_path.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser_harness import Browser
from tests.kafka_harness import ROOT, SEGSTREAM, free_port

# The demo is seeded (seed 7), so its output is fixed. The smallest run found with a drift,
# so that the drift timeline has a marker to draw (500 users and 40,000 events have none).
DEMO_ARGS = ["--users", "1000", "--events", "60000"]
CHARTS = ["chart-cluster-sizes", "chart-rule-sizes", "chart-throughput", "chart-lag", "chart-drift"]
URL_LINE = re.compile(rb"dashboard: (http://127\.0\.0\.1:\d+/dashboard)")
HOLD_LINE = b"dashboard still up at"


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


@pytest.mark.timeout(240)
async def test_the_demo_dashboard_draws_every_chart_from_its_data_without_console_errors(demo_dashboard, tmp_path):
    async with Browser() as browser:
        page = await browser.new_page(width=1400, height=1000)
        await page.goto(demo_dashboard)
        try:
            await page.wait_for("window.segstreamDashboard && window.segstreamDashboard.renders >= 2", timeout=30)
            data = await page.evaluate("window.segstreamDashboard.data")
            points = await page.evaluate(  # chart id -> what it drew
                "Object.fromEntries([...document.querySelectorAll('[data-points]')]"
                ".map(e => [e.id, Number(e.dataset.points)]))"
            )
            profiles = await page.evaluate("document.querySelectorAll('#profiles .profile').length")
            recent_rows = await page.evaluate("document.querySelectorAll('#recent tbody tr').length")
            loaded = await page.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
            status = await page.evaluate("document.getElementById('status').dataset.state")
        finally:
            # Kept whatever the outcome: the picture is what explains a failure.
            screenshot = artifacts_dir() / "dashboard-demo.png"
            await page.screenshot(screenshot)
            shutil.copy(screenshot, tmp_path / "dashboard-demo.png")

    assert page.errors == [], f"console errors: {page.errors}"
    assert status == "live"
    assert data["source"] == "demo"

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

    assert profiles == len(clusters) > 0
    assert recent_rows == len(data["recent"]) > 0

    origin = demo_dashboard.removesuffix("/dashboard")
    assert loaded and all(url.startswith(origin + "/dashboard/") for url in loaded), loaded


def _size_points(history: list[dict], segments: list[dict]) -> int:
    return sum(p["sizes"].get(s["id"]) is not None for p in history for s in segments)
