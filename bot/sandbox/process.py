"""`escalation-bot serve` as a child process, for tests and benchmarks that need
a real separate process (replicas, SIGKILL, restarts)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_until_answering(url: str, proc: subprocess.Popen[bytes], what: str, timeout: float) -> None:
    """Poll `url` until it answers 200; fail at once if the process behind it has exited."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited with {proc.returncode}")
            try:
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise TimeoutError(f"{what} not ready after {timeout}s")


class ServeProcess:
    def __init__(
        self,
        env: dict[str, str],
        *,
        cwd: Path,
        port: int | None = None,
        log_path: Path | None = None,
        python: str | None = None,
    ):
        # cwd matters: serve reads `.env` from it, and a test must not pick up a developer's.
        self.cwd = cwd
        self.port = port or free_port()
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.extra_args: list[str] = []  # after `serve --host --port`, e.g. ["--no-migrate"]
        self.python = python or sys.executable  # another release's virtualenv, say
        self._log = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServeProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "TEAMS_"))}
        env.update(self.env)
        self._log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        command = [self.python, "-m", "bot.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        self.proc = subprocess.Popen(
            [*command, *self.extra_args],
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.cwd,
        )
        return self

    async def wait_ready(self, timeout: float = 30.0) -> None:
        assert self.proc is not None, "start() first"
        await wait_until_answering(self.url + "/healthz", self.proc, f"serve on port {self.port}", timeout)

    def kill(self) -> None:
        """SIGKILL: no clean-up, no goodbye, like a crashed replica."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._log not in (None, subprocess.DEVNULL):
            self._log.close()  # type: ignore[union-attr]
