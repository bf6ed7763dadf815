"""``bench kafka`` (c): the real ``segstream worker`` end to end on a pre-filled clicks topic.

The worker runs as its own process with a unique app id (so a fresh consumer group
and fresh changelog topics) and a unique topic prefix, reading ``<prefix>clicks``.
Completion is watched from outside, every 0.2 s: the group's committed offsets on
``<prefix>clicks`` reaching the end offsets. Two timings come out:

- *observed*: from the first record seen in ``<app_id>-user_to_state-changelog``
  ("ready") to all offsets committed. It includes up to one commit interval of lag.
- *in-worker*: from the first to the last changelog record's CreateTime, which the
  worker's producer stamps as it writes each batch; the same "first record to last
  record" span the client and Faust-floor measurements use.

Afterwards the worker is stopped (SIGTERM, then SIGKILL) and the changelog and
segment-changes topics are read whole: changelog writes per event, bytes of state
per user (latest value per key), and segment changes by kind.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import orjson

from bench.common import cpu_seconds, free_port, peak_rss_mb
from bench.kafka_tools import BROKER, Kafka, read_topic

REPO = Path(__file__).resolve().parent.parent
SEGSTREAM = REPO / ".venv" / "bin" / "segstream"
PY_SPY = REPO / ".venv" / "bin" / "py-spy"
POLL_S = 0.2


async def run_worker(
    *,
    run_id: str,
    events: int,
    clicks_end: dict[int, int],
    work_dir: Path,
    timeout_s: float,
    profile: str | None,
    extra_env: dict[str, str],
    quiet_s: float = 0.0,
) -> dict:
    prefix, app_id = f"{run_id}-", f"{run_id}-segstream"
    clicks, changelog = f"{prefix}clicks", f"{app_id}-user_to_state-changelog"
    log_path = work_dir / "segstream-worker.log"
    # The defaults, not a config file this shell happens to name; --faust-env may name one.
    inherited = {name: value for name, value in os.environ.items() if name != "SEGSTREAM_CONFIG"}
    env = {
        **inherited,
        "SEGSTREAM_APP_ID": app_id,
        "SEGSTREAM_TOPIC_PREFIX": prefix,
        "SEGSTREAM_WEB_PORT": str(free_port()),
        "SEGSTREAM_DATA_DIR": str(work_dir / "segstream-data"),
        "SEGSTREAM_BROKER": BROKER,
        **extra_env,
    }
    out: dict = {"app_id": app_id, "log": str(log_path)}
    with open(log_path, "wb") as log:
        started = time.monotonic()
        proc = subprocess.Popen(
            [str(SEGSTREAM), "worker"], env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    spy = _start_py_spy(proc.pid, profile) if profile else None
    try:
        out.update(await _watch(proc, app_id, clicks, changelog, clicks_end, started, timeout_s))
        if quiet_s > 0:  # the stream has ended: what the worker does with its state while quiet
            await asyncio.sleep(quiet_s)
            out["quiet_s"] = quiet_s
    except (RuntimeError, TimeoutError) as exc:
        out["error"] = str(exc)
    finally:
        out["worker_peak_rss_mb"] = peak_rss_mb(proc.pid)
        if spy is not None:
            spy.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT
            _wait(spy, 30)
        out["worker_exit"] = _stop(proc)
    out.update(await _read_outputs(changelog, f"{prefix}segment-changes", events))
    async with Kafka() as kafka:
        for name in ("clicks-dlq", "model-samples", "segment-model", "segment-drift"):
            ends = await kafka.end_offsets(f"{prefix}{name}")
            out[f"{name}_records"] = sum(ends.values()) if ends else 0
    out["log_problems"] = _log_problems(log_path)
    return out


async def _watch(proc, app_id, clicks, changelog, clicks_end, started, timeout_s) -> dict:
    """Poll until every clicks partition is committed at its end offset."""
    ready = first_commit = cpu_ready = None
    total = sum(clicks_end.values())
    async with Kafka() as kafka:
        while True:
            now = time.monotonic()
            if proc.poll() is not None:
                raise RuntimeError(f"segstream worker exited early with status {proc.returncode}")
            if now - started > timeout_s:
                raise TimeoutError(f"segstream worker did not finish within {timeout_s:.0f} s")
            if ready is None:
                ends = await kafka.end_offsets(changelog)
                if ends and sum(ends.values()) > 0:
                    ready, cpu_ready = now, cpu_seconds(proc.pid)
            committed = await kafka.committed(app_id, clicks)
            done = sum(min(committed.get(p, 0), end) for p, end in clicks_end.items())
            if first_commit is None and done > 0:
                first_commit = now
            if done >= total:
                if ready is None:
                    ready, cpu_ready = first_commit, 0.0
                return {
                    "startup_s": ready - started,
                    "observed_s": now - ready,
                    "cpu_s": cpu_seconds(proc.pid) - cpu_ready,
                    "first_commit_s": first_commit - started,
                }
            await asyncio.sleep(POLL_S)


async def _read_outputs(changelog: str, changes_topic: str, events: int) -> dict:
    latest: dict[bytes, int] = {}
    stamps = [float("inf"), float("-inf")]

    def on_state(record) -> None:
        if record.value is None:
            latest.pop(record.key, None)
        else:
            latest[record.key] = len(record.value)
        stamps[0] = min(stamps[0], record.timestamp)
        stamps[1] = max(stamps[1], record.timestamp)

    kinds: Counter = Counter()
    writes = await read_topic(changelog, on_state)
    changes = await read_topic(changes_topic, lambda r: kinds.update([orjson.loads(r.value).get("change")]))
    sizes = sorted(latest.values())
    return {
        "changelog_records": writes,
        "writes_per_event": writes / events,
        "state_keys": len(sizes),
        "state_bytes_mean": sum(sizes) / len(sizes) if sizes else 0.0,
        "state_bytes_p99": sizes[int(0.99 * (len(sizes) - 1))] if sizes else 0,
        "state_bytes_max": sizes[-1] if sizes else 0,
        "in_worker_s": (stamps[1] - stamps[0]) / 1000 if writes else 0.0,
        "segment_changes": changes,
        "segment_changes_by_kind": dict(kinds),
    }


def _start_py_spy(pid: int, path: str) -> subprocess.Popen:
    return subprocess.Popen(
        [str(PY_SPY), "record", "-f", "raw", "-r", "100", "--nonblocking", "-o", path, "--pid", str(pid)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait(proc: subprocess.Popen, seconds: float) -> int | None:
    try:
        return proc.wait(seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def _stop(proc: subprocess.Popen) -> str:
    """SIGTERM the worker's process group, SIGKILL it after 20 s; say how it ended."""
    if proc.poll() is not None:
        return f"exited by itself ({proc.returncode})"
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        return f"stopped on SIGTERM ({proc.wait(20)})"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        return f"killed after SIGTERM timed out ({proc.wait()})"


def _log_problems(path: Path, limit: int = 8) -> dict:
    """Counts of ERROR / WARNING / Traceback lines in the worker log, with the first distinct ones."""
    counts: Counter = Counter()
    samples: list[str] = []
    for line in path.read_text(errors="replace").splitlines():
        level = next((w for w in ("Traceback", "CRITICAL", "ERROR", "WARNING") if w in line), None)
        if level is None:
            continue
        counts[level] += 1
        text = line.strip()[:300]
        if len(samples) < limit and text not in samples:
            samples.append(text)
    return {"counts": dict(counts), "first": samples}
