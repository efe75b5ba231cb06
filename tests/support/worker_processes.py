"""Real worker processes for the worker and engine tests (tests/queued/test_workers.py,
tests/queued/test_engines.py) and bench/bench_engines.py: their environment, starting, killing and
stopping them, and waiting on the outbox.

Workers read their settings from the environment through tests/settings.py: the test
database, the sandbox, the Redis cache of the shared limiter, the task backend and its broker.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from django.core.mail import EmailMessage
from django.db import connection

from django_sendfleet.backends import QueuedEmailBackend
from django_sendfleet.models import SendLog
from django_sendfleet.sandbox import SANDBOX_API_KEY

ROOT = Path(__file__).resolve().parents[2]
POSTGRES = ("postgres://", "postgresql://")


def uses_postgres() -> bool:
    return os.environ.get("DATABASE_URL", "").startswith(POSTGRES)


#: A worker's environment for the killed-worker tests: a short lease, still longer than one
#: send may take (the system checks insist): at most 1 s for a rate-limiter slot and 1 s each
#: to connect and to read.
SHORT_LEASE = {
    "SENDFLEET_TEST_LEASE_SECONDS": "4",
    "SENDFLEET_TEST_TIMEOUT": "1",
    "SENDFLEET_TEST_MAX_RETRY_WAIT": "1",
}


def worker_environment(
    api_url: str, redis_url: str, task_backend: str, broker_url: str = ""
) -> dict[str, str]:
    """The environment of a worker process: this process's test database, the sandbox at
    ``api_url``, the limiter's cache at ``redis_url``, the task backend and its broker."""
    database = connection.settings_dict
    return os.environ | {
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONPATH": str(ROOT),
        "DATABASE_URL": (
            f"postgres://{database['USER']}:{database['PASSWORD']}@{database['HOST']}:"
            f"{database['PORT']}/{database['NAME']}"
        ),
        "SENDFLEET_TEST_TASK_BACKEND": task_backend,
        "SENDFLEET_TEST_API_URL": api_url,
        "SENDFLEET_TEST_API_KEY": SANDBOX_API_KEY,
        "SENDFLEET_TEST_REDIS_URL": redis_url,
        "SENDFLEET_TEST_BROKER_URL": broker_url,
    }


def start_processes(
    command: Sequence[str], env: dict[str, str], count: int, log: IO[Any] | None = None
) -> list[subprocess.Popen[bytes]]:
    """Start ``count`` workers; their output goes to ``log`` (a file) when given."""
    output = log or subprocess.DEVNULL
    return [
        subprocess.Popen(list(command), env=env, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
        for _ in range(count)
    ]


class Workers:
    """Worker processes started with ``command(number)`` and ``env``: ``start`` more, ``stop``
    them all. Their output goes to the file ``log``, which ``wait_for`` shows on a timeout."""

    def __init__(
        self, command: Callable[[int], Sequence[str]], env: dict[str, str], log: Path
    ) -> None:
        self.command, self.env, self.log = command, env, log
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, count: int, **environment: str) -> list[subprocess.Popen[bytes]]:
        """Start ``count`` more, with these variables added to their environment."""
        with self.log.open("ab") as output:
            new = [
                process
                for number in range(len(self.processes), len(self.processes) + count)
                for process in start_processes(
                    self.command(number), self.env | environment, 1, output
                )
            ]
        self.processes += new
        return new

    def stop(self) -> None:
        stop(self.processes)


def _stat(pid: int | str) -> list[str]:
    """The fields of /proc/PID/stat after the command name: [state, ppid, ...]."""
    return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()


def process_tree(pid: int) -> list[tuple[int, str]]:
    """``pid`` and every process under it (Linux), each with its start time (so a pid reused
    later is not mistaken for it). Engines send from children of the worker (RQ's work horse,
    in a session of its own; Celery's pool), so a killed worker is the whole tree, as when its
    container is killed."""
    children: dict[int, list[tuple[int, str]]] = {}
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = _stat(proc.name)
            children.setdefault(int(fields[1]), []).append((int(proc.name), fields[19]))
    with contextlib.suppress(OSError, IndexError):
        tree, todo = [], [(pid, _stat(pid)[19])]
        while todo:
            tree.append(todo.pop())
            todo += children.get(tree[-1][0], [])
        return tree
    return []


def _kill_tree(tree: list[tuple[int, str]]) -> None:
    for pid, started in tree:
        with contextlib.suppress(OSError, IndexError):
            if _stat(pid)[19] == started:
                os.kill(pid, signal.SIGKILL)


def kill(worker: subprocess.Popen[bytes]) -> None:
    """SIGKILL the worker and every process under it."""
    _kill_tree(process_tree(worker.pid))
    worker.wait(timeout=10)


def stop(workers: Sequence[subprocess.Popen[bytes]]) -> None:
    """Ask the workers to shut down (SIGTERM), then kill whatever is left of them after 10 s:
    one deadline for all (10 s each made three RQ workers slow to stop cost 30 s)."""
    trees = [process_tree(worker.pid)[1:] for worker in workers]  # their children
    for worker in workers:
        if worker.poll() is None:
            worker.terminate()
    deadline = time.monotonic() + 10
    for worker, children in zip(workers, trees, strict=True):
        try:
            worker.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait(timeout=10)
        _kill_tree(children)  # a child still sending


def wait_for(
    condition: Callable[[], bool], timeout: float, what: str, log: Path | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    statuses = sorted(SendLog.objects.values_list("status", "error_code"))
    tail = f"\nworker log:\n{log.read_text()[-4000:]}" if log and log.exists() else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; rows: {statuses}{tail}")


def queue_messages(count: int, prefix: str = "user") -> None:
    backend = QueuedEmailBackend()
    for n in range(count):  # one send_messages call each: one task each, for workers to share
        backend.send_messages(
            [EmailMessage(f"Hello {n}", "Body", "shop@example.com", [f"{prefix}{n}@example.com"])]
        )


@contextlib.contextmanager
def engine_workers(
    engine: Any, sandbox: Any, settings: Any, redis_url: str, log_dir: Path
) -> Iterator[Workers]:
    """An engine's workers (tests/support/engines.py), none started yet; all stopped after.
    The broker is emptied first, and this process queues onto it, sending to ``sandbox``."""
    broker_url = engine.broker_url(redis_url)
    engine.clear_broker(broker_url)
    engine.configure(settings, broker_url)
    settings.SENDFLEET = {"API_URL": sandbox.url, "API_KEY": SANDBOX_API_KEY}
    env = worker_environment(sandbox.url, redis_url, engine.backend, broker_url)
    workers = Workers(engine.worker_command, env, log_dir / f"{engine.name}-workers.log")
    try:
        yield workers
    finally:
        workers.stop()
