"""A real Prometheus server of a test's own (Debian's ``prometheus``), scraping given targets every second."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

from tests.kafka_harness import free_port


class PrometheusServer:
    """``prometheus`` on a free loopback port with its own config and storage under ``tmp``."""

    def __init__(self, tmp: Path, targets: list[str], job: str = "segstream") -> None:
        self.tmp, self.port = tmp, free_port()
        tmp.mkdir(parents=True, exist_ok=True)
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = tmp / "prometheus.yml"
        self.config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            f"scrape_configs:\n  - job_name: {job}\n    static_configs:\n      - targets: {json.dumps(targets)}\n"
        )
        self.log_path = tmp / "prometheus.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 30.0) -> PrometheusServer:
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError("prometheus is not installed: scripts/test-tools installs the Debian package")
        self.process = subprocess.Popen(
            [binary, f"--config.file={self.config}", f"--storage.tsdb.path={self.tmp / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log_path.open("wb"), stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"prometheus did not become ready:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        return self

    def _ready(self) -> bool:
        try:
            return urllib.request.urlopen(f"{self.url}/-/ready", timeout=2).status == 200
        except OSError:
            return False

    def query(self, promql: str) -> list[dict]:
        """The instant vector of ``promql`` from Prometheus's HTTP API: ``[{"metric": ..., "value": [ts, "v"]}]``."""
        url = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        body = json.loads(urllib.request.urlopen(url, timeout=10).read())
        assert body["status"] == "success", body
        return body["data"]["result"]

    def targets_up(self) -> bool:
        return any(float(item["value"][1]) == 1.0 for item in self.query("up"))

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
