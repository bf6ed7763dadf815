"""A redis-server of a test's own, which it may stop (SIGSTOP: never answers) or kill."""

from __future__ import annotations

import os
import signal
import subprocess
import time

from tests.kafka_harness import free_port

GUARD_S = 10.0  # hang guard around calls to a stopped Redis, not a speed assertion


class DedicatedRedis:
    """``redis-server`` on a free port, without persistence; ``start`` again after ``kill`` for a new, empty one."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 20.0) -> DedicatedRedis:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while not self._answers():
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server on port {self.port} exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"redis-server on port {self.port} not answering after {timeout} s")
            time.sleep(0.05)
        return self

    def _answers(self) -> bool:
        try:
            out = subprocess.run(["redis-cli", "-p", str(self.port), "ping"], capture_output=True, timeout=2)
        except subprocess.TimeoutExpired:
            return False
        return out.stdout.strip() == b"PONG"

    def pause(self) -> None:
        """Stop the process: connections are still accepted (by the kernel), nothing is answered."""
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGCONT)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.resume()
            self.process.kill()
            self.process.wait(10)
