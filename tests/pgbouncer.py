"""A real PgBouncer (Debian's package) in front of this machine's PostgreSQL, configured by the
stack's own deploy/pgbouncer/entrypoint.sh (transaction pooling), on a loopback port of its own,
for the tests and benches that go through it.

PgBouncer refuses to run as root, so under root it runs as the `postgres` user, in a directory that
user can write.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from bot.sandbox.process import free_port

ENTRYPOINT = Path(__file__).resolve().parent.parent / "deploy" / "pgbouncer" / "entrypoint.sh"
# The login the bots use through PgBouncer (SCRAM, as the stack's PgBouncer asks for). This machine's
# PostgreSQL trusts loopback connections, so PgBouncer's own login to it needs no real password.
PASSWORD = "pgbouncer-test-secret"


@dataclass
class PgBouncer:
    port: int
    dir: Path
    proc: subprocess.Popen[bytes]

    def url_for(self, direct_url: str) -> str:
        """`direct_url` (a PostgreSQL URL on this machine) through this PgBouncer."""
        url = make_url(direct_url).set(host="127.0.0.1", port=self.port, password=PASSWORD)
        return url.render_as_string(hide_password=False)

    def log(self) -> str:
        path = self.dir / "pgbouncer.log"
        return path.read_text(errors="replace") if path.exists() else ""


def binary() -> str:
    found = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if Path("/usr/sbin/pgbouncer").exists() else None)
    if found is None:
        raise RuntimeError("pgbouncer is not installed (Debian: apt-get install pgbouncer; .ci/run installs it)")
    return found


@contextlib.contextmanager
def pgbouncer(direct_url: str, *, pool: int = 20) -> Iterator[PgBouncer]:
    """Debian's PgBouncer, configured by the stack's own deploy/pgbouncer/entrypoint.sh (transaction
    pooling, SCRAM logins), in front of the server `direct_url` names, with at most `pool` server
    connections per database (as an operator sizes it: far fewer than the clients)."""
    target = make_url(direct_url)
    workdir = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    os.chmod(workdir, 0o777)  # PgBouncer runs as `postgres` when the tests run as root
    listen = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "POSTGRES_USER": target.username or "postgres",
        "POSTGRES_PASSWORD": PASSWORD,
        "PGBOUNCER_DIR": str(workdir),
        "PGBOUNCER_SERVER_HOST": target.host or "127.0.0.1",
        "PGBOUNCER_SERVER_PORT": str(target.port or 5432),
        "PGBOUNCER_LISTEN_ADDR": "127.0.0.1",
        "PGBOUNCER_LISTEN_PORT": str(listen),
        "PGBOUNCER_POOL_SIZE": str(pool),
        "PGBOUNCER_BINARY": binary(),
    }
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    command = [*as_postgres, "env", "-i", *(f"{k}={v}" for k, v in env.items()), "sh", str(ENTRYPOINT)]
    log = open(workdir / "pgbouncer.log", "wb")
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                said = (workdir / "pgbouncer.log").read_text()
                raise RuntimeError(f"pgbouncer exited with {proc.returncode}: {said[-1000:]}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", listen), timeout=0.2):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("pgbouncer did not listen within 10 s")
            time.sleep(0.05)
        yield PgBouncer(listen, workdir, proc)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # immediate shutdown: the test is over
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)
