"""A private PostgreSQL cluster for tests (initdb + pg_ctl on 127.0.0.1, a free port), and fresh databases."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Cluster:
    url: str
    data: Path
    bin_dir: Path
    options: str = ""  # the server's options (address, port, socket directory), kept for `start`

    def stop(self) -> None:
        try:
            self.halt()
        except subprocess.CalledProcessError:
            pass  # already stopped (a test halted it)
        shutil.rmtree(self.data.parent, ignore_errors=True)

    def halt(self) -> None:
        """Stop the server the way a crash or an operator's `pg_ctl stop -m immediate` does (no clean shutdown)."""
        _as_postgres([str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"])

    def start(self) -> None:
        """(Re)start the server on the same address and port."""
        _as_postgres([str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-o", self.options,
                      "-l", str(self.data.parent / "log"), "-w", "start"])


def _bin_dir() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise FileNotFoundError("no initdb in /usr/lib/postgresql/*/bin or on PATH")


def _as_postgres(command: list[str]) -> None:
    """initdb refuses to run as root: run as the `postgres` user then."""
    if os.geteuid() == 0:
        command = ["runuser", "-u", "postgres", "--", *command]
    subprocess.run(command, check=True, capture_output=True, text=True, timeout=120)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_cluster() -> Cluster:
    """A fresh cluster in its own directory under /tmp (pytest's tmp dirs are closed to other users)."""
    bin_dir = _bin_dir()
    workdir = Path(tempfile.mkdtemp(prefix="study-test-pg-"))
    data = workdir / "data"
    if os.geteuid() == 0:
        shutil.chown(workdir, "postgres", "postgres")
    _as_postgres([str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres", "--no-sync"])
    port = _free_port()
    cluster = Cluster(url=f"postgresql://postgres@127.0.0.1:{port}", data=data, bin_dir=bin_dir,
                      options=f"-h 127.0.0.1 -p {port} -k {workdir} -F -c max_connections=200")
    cluster.start()
    return cluster


def create_database(server_url: str, label: str) -> str:
    import psycopg2

    name = f"{label}_{uuid.uuid4().hex[:8]}"
    connection = psycopg2.connect(f"{server_url}/postgres")
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{name}"')
    finally:
        connection.close()
    return f"{server_url}/{name}"
