"""What every benchmark shares: the report it returns, machine info, the table and JSON output."""

from __future__ import annotations

import os
import platform
import shlex
import hashlib
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import orjson

PACKAGES = ("segstream", "faust-streaming", "mode-streaming", "aiokafka", "river", "orjson", "numpy", "scipy")


@dataclass
class Report:
    """One benchmark's outcome: a table of rows, free-form notes, and everything else for JSON."""

    title: str
    columns: list[str]
    rows: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


def command_line() -> str:
    """The command as typed, as far as it can be rebuilt (``python -m bench ...``)."""
    return shlex.join([os.path.relpath(sys.executable), "-m", "bench", *sys.argv[1:]])


def machine() -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    cpu = ""
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next((line.split(":", 1)[1].strip() for line in info if line.startswith("model name")), "")
    except OSError:
        pass
    return {
        "host": socket.gethostname(),
        "nproc": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "packages": versions,
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def peak_rss_mb(pid: int | str = "self") -> float | None:
    """Peak resident set size (VmHWM) of a live process, in MiB."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """User plus system CPU time of a live process (all its threads), in seconds."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def source_state() -> dict[str, Any]:
    """The commit and the uncommitted changes measured (read-only git), so a number can be traced to code."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
        return done.stdout if done.returncode == 0 else ""

    diff = git("diff", "HEAD")
    return {
        "commit": git("rev-parse", "--short", "HEAD").strip(),
        "modified": [line[3:] for line in git("status", "--porcelain").splitlines()],
        "diff_sha1": hashlib.sha1(diff.encode()).hexdigest()[:12] if diff else None,
    }


def format_value(value: Any) -> str:
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.3g}"
    if isinstance(value, int):
        return f"{value:,}"
    return "-" if value is None else str(value)


def table(columns: list[str], rows: list[dict[str, Any]]) -> str:
    cells = [[format_value(row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) if cells else len(c) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(columns, widths)))]
    lines.append("  ".join("-" * w for w in widths))
    for r in cells:
        lines.append("  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(r, widths))))
    return "\n".join(lines)


def render(report: Report, header: dict[str, Any]) -> str:
    m = header["machine"]
    packages = " ".join(f"{k}={v}" for k, v in m["packages"].items())
    parts = [
        f"== {report.title}",
        f"command: {header['command']}",
        f"machine: {m['nproc']} cpus ({m['cpu']}), python {m['python']}, {m['platform']}, "
        f"load average at start {m['loadavg_at_start']}",
        f"packages: {packages}",
        f"source: commit {header['source']['commit']}, uncommitted diff {header['source']['diff_sha1']} "
        f"({len(header['source']['modified'])} files changed or new)",
        f"took: {header['seconds']:.1f} s",
        "",
        table(report.columns, report.rows),
    ]
    if report.notes:
        parts += ["", *(f"- {note}" for note in report.notes)]
    return "\n".join(parts)


def write_json(path: str, report: Report, header: dict[str, Any]) -> None:
    doc = {**header, "title": report.title, "rows": report.rows, "notes": report.notes, **report.data}
    with open(path, "wb") as out:
        out.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS) + b"\n")
