"""Shared fixtures: a real Mosquitto broker on a free loopback port, temp stores."""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import structlog
from hypothesis import settings

# CI gates every landing, so there the fuzzers replay the same examples each run (a failure
# is reproducible); on a developer's machine they draw new ones and keep exploring.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

from alprd.config import Config, ScreenConfig, config_from_dict
from alprd.store import Store


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mosquitto_binary() -> str:
    path = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
    if path is None:
        pytest.fail("mosquitto is not installed: run `make test`, which installs it (apt-get install mosquitto)")
    return path


class Broker:
    """A Mosquitto process the test owns; ``stop()``/``kill()`` and ``start()`` simulate an outage."""

    def __init__(self, workdir: Path, extra_conf: str = "", port: int | None = None):
        self.port = port or free_port()
        self.workdir = workdir
        self.conf = workdir / "mosquitto.conf"
        # As root, mosquitto would drop to user "mosquitto", which cannot enter pytest's
        # private tmp dirs: no persistence across stop()/start(), no password or TLS files.
        as_root = "user root\n" if os.geteuid() == 0 else ""
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n{as_root}"
            f"persistence true\npersistence_location {workdir}/\n"
            f"{extra_conf if extra_conf else 'allow_anonymous true'}\n"
        )
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([mosquitto_binary(), "-c", str(self.conf)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"mosquitto exited: {self.proc.stderr.read().decode()}")
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL: Mosquitto loses what it had not yet saved (it saves at shutdown, or every 30 min)."""
        self.proc.kill()
        self.proc.wait(5)
        self.proc = None


@pytest.fixture(autouse=True)
def _fresh_logging():
    """Commands configure structlog process-wide; no test may inherit another's set-up."""
    structlog.reset_defaults()
    yield
    structlog.reset_defaults()


@pytest.fixture(autouse=True)
def _screen_off_by_default(request):
    """The daemon's screen listens on 127.0.0.1:8080 by default; daemons built in tests would fight over
    that port (and with anyone's demo), so here it is off unless a test's config turns it on.
    test_config checks the real defaults."""
    if request.module.__name__ == "test_config":
        yield
        return
    field = Config.model_fields["screen"]
    real = field.default
    field.default = ScreenConfig(enabled=False)
    Config.model_rebuild(force=True)
    yield
    field.default = real
    Config.model_rebuild(force=True)


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


@pytest.fixture
def store(tmp_path) -> Store:
    s = Store(tmp_path / "alprd.db")
    yield s
    s.close()


class PgCluster:
    """A throwaway PostgreSQL cluster (Debian's ``postgresql`` package) in a temporary directory, reached
    on a Unix socket there, with durability off (it is thrown away). As root it runs as ``postgres``."""

    def __init__(self):
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
        if not bins:
            pytest.fail("PostgreSQL is not installed: run `make test`, which installs it (apt-get install postgresql)")
        self.bin = Path(bins[-1]).parent
        self.root = Path(tempfile.mkdtemp(prefix="alprd-pg-"))
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            pw = pwd.getpwnam("postgres")
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self.data = self.root / "data"
        self._names = itertools.count(1)

    def _run(self, *cmd: str) -> None:
        subprocess.run([*self.as_user, *cmd], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "alprd", "-A", "trust", "-E", "UTF8")
        opts = (f"-k {self.root} -c listen_addresses='' -c fsync=off -c synchronous_commit=off "
                "-c full_page_writes=off -c max_connections=200")
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-l", str(self.root / "log"), "-o", opts,
                  "start")

    def stop(self) -> None:
        subprocess.run([*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"],
                       check=False, capture_output=True, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://alprd@/{database}?host={self.root}"

    def new_database(self) -> str:
        """A new, empty database; its URL."""
        import psycopg

        name = f"t{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)


@pytest.fixture(scope="session")
def pg_cluster():
    cluster = PgCluster()
    cluster.start()
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_url(pg_cluster) -> str:
    """A fresh PostgreSQL database of the test's own."""
    return pg_cluster.new_database()


BACKENDS = ["sqlite", "postgresql"]  # a module whose rules hold on a unit and at the department runs on both


def drop_access_log_guards(store: Store) -> None:
    """What someone with write access to the database would do first: drop the append-only triggers."""
    if store.dialect == "postgresql":
        store.db.execute("DROP TRIGGER access_log_append_only ON access_log")
    else:
        store.db.execute("DROP TRIGGER access_log_no_update")
        store.db.execute("DROP TRIGGER access_log_no_delete")


def reopen(store: Store) -> Store:
    """A second connection to the same database (another process's view)."""
    if store.dialect == "postgresql":
        from alprd.store.postgres import PgStore

        return PgStore(store.url, store.audit_secret)
    return Store(store.path)


def open_backend(request, tmp_path: Path) -> Store:
    """``store`` for ``@pytest.fixture(params=BACKENDS)``: an SQLite file, or a fresh PostgreSQL database
    (its access-log secret in tmp_path, as a unit's is beside its file)."""
    if request.param == "postgresql":
        from alprd.store.postgres import PgStore

        return PgStore(request.getfixturevalue("pg_url"), tmp_path / "audit.key")
    return Store(tmp_path / "alprd.db")


def make_config(tmp_path: Path, **sections) -> Config:
    """A Config whose state lives in ``tmp_path``; keyword args are section dicts."""
    data = {"store": {"state_dir": str(tmp_path)}}
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    return config_from_dict(data)
