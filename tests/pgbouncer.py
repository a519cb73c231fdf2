"""A real PgBouncer (Debian's package) in front of this machine's PostgreSQL, in transaction pooling
as operators run it, on a loopback port of its own, for the tests and benches that go through it.

PgBouncer refuses to run as root; started by root it switches to the `postgres` user (`-u`), so its
files live in a directory that user can read.
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

CONFIG = """\
[databases]
* = host={host} port={port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {listen}
unix_socket_dir =
auth_type = trust
auth_file = {dir}/userlist.txt
pool_mode = transaction
max_client_conn = 2000
default_pool_size = {pool}
max_db_connections = {pool}
server_lifetime = 3600
logfile = {dir}/pgbouncer.log
pidfile = {dir}/pgbouncer.pid
ignore_startup_parameters = extra_float_digits
"""


@dataclass
class PgBouncer:
    port: int
    dir: Path
    proc: subprocess.Popen[bytes]

    def url_for(self, direct_url: str) -> str:
        """`direct_url` (a PostgreSQL URL on this machine) through this PgBouncer."""
        return make_url(direct_url).set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)

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
    """PgBouncer in transaction pooling in front of the server `direct_url` names, with at most
    `pool` server connections per database (as an operator sizes it: far fewer than the clients)."""
    target = make_url(direct_url)
    workdir = Path(tempfile.mkdtemp(prefix="pgbouncer-"))
    os.chmod(workdir, 0o777)
    listen = free_port()
    (workdir / "userlist.txt").write_text(f'"{target.username or "postgres"}" ""\n')
    (workdir / "pgbouncer.ini").write_text(
        CONFIG.format(host=target.host or "127.0.0.1", port=target.port or 5432, listen=listen, dir=workdir, pool=pool)
    )
    for f in workdir.iterdir():
        os.chmod(f, 0o644)
    as_root = ["-u", "postgres"] if os.geteuid() == 0 else []
    proc = subprocess.Popen(
        [binary(), *as_root, str(workdir / "pgbouncer.ini")], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"pgbouncer exited with {proc.returncode}: {err[-500:]}")
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
        shutil.rmtree(workdir, ignore_errors=True)
