"""The task engines the queued worker is tested and benchmarked on, set up as docs/queued.md
documents them: django-tasks-db's ``db_worker``; RQ through django-tasks-rq with ``rqworker``;
Celery through django-tasks-fennel with ``celery worker``. RQ and Celery use Redis as broker.

Each engine says how to start one worker process (tests/settings.py configures the worker from
the environment) and configures this process, the one that queues, the same way.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest


@dataclass(frozen=True)
class Engine:
    name: str
    #: The ``TASKS`` backend.
    backend: str
    #: The packages the engine needs (skipped without them).
    packages: tuple[str, ...]
    #: The Redis database of its broker, on the test Redis server (None: no broker).
    broker_db: int | None
    #: The Django app it adds to INSTALLED_APPS (tests/settings.py adds it for workers).
    app: str

    def available(self) -> bool:
        return all(importlib.util.find_spec(package) for package in self.packages)

    def skip_unless_available(self) -> None:
        if not self.available():
            pytest.skip(f"pip install 'django-sendfleet[engines]' for {self.name}")

    def broker_url(self, redis_url: str) -> str:
        """The broker on the test Redis server, a database of its own."""
        if self.broker_db is None:
            return ""
        parts = urlsplit(redis_url)
        return urlunsplit(parts._replace(path=f"/{self.broker_db}"))

    def worker_command(self, number: int) -> Sequence[str]:
        """The command that starts worker ``number``, exactly as docs/queued.md has it."""
        django = [sys.executable, "-m", "django"]
        if self.name == "db_worker":
            return [*django, "db_worker", "--interval", "0.1", "--no-startup-delay"]
        if self.name == "rq":
            return [
                *django,
                "rqworker",
                "default",
                "--job-class",
                "django_tasks_rq.Job",
                "--with-scheduler",
            ]
        return [
            sys.executable,
            "-m",
            "celery",
            "--app",
            "django_tasks_fennel.app",
            "worker",
            "--hostname",
            f"sendfleet{number}@%h",  # several workers on one machine need their own names
            "--concurrency",
            "1",  # one pool process: N workers are N senders, as with the other engines
            "--loglevel",
            "INFO",
        ]

    def settings(self, broker_url: str) -> dict[str, Any]:
        """The settings of a process that queues onto this engine (as the workers have)."""
        if self.name == "rq":
            return {
                "TASKS": {"default": {"BACKEND": self.backend, "QUEUES": ["default"]}},
                "RQ_QUEUES": {"default": {"URL": broker_url, "DEFAULT_TIMEOUT": 200 * 300}},
            }
        if self.name == "celery":
            return {
                "TASKS": {"default": {"BACKEND": self.backend}},
                "CELERY_BROKER_URL": broker_url,
            }
        return {"TASKS": {"default": {"BACKEND": self.backend}}}

    def configure(self, settings: Any, broker_url: str) -> None:
        """Queue onto this engine from this process (pytest-django's ``settings``)."""
        for name, value in self.settings(broker_url).items():
            setattr(settings, name, value)
        self.start_app(broker_url)

    def start_app(self, broker_url: str) -> None:
        """What the engine's Django app does where it is installed (this process has it not).

        Celery: django_tasks_fennel's ``AppConfig.ready()`` makes its app, configured from the
        ``CELERY_*`` settings, the one the backend sends with.
        """
        if self.name == "celery":
            from django_tasks_fennel.app import app

            app.set_default()
            app.set_current()
            assert app.conf.broker_url == broker_url

    def clear_broker(self, broker_url: str) -> None:
        """Empty the broker's database: no task of an earlier test is left to run."""
        if broker_url:
            import redis

            redis.Redis.from_url(broker_url).flushdb()


DB_WORKER = Engine(
    "db_worker", "django_tasks_db.DatabaseBackend", ("django_tasks_db",), None, "django_tasks_db"
)
RQ = Engine(
    "rq", "django_tasks_rq.RQBackend", ("django_tasks_rq", "django_rq", "rq"), 12, "django_rq"
)
CELERY = Engine(
    "celery",
    "django_tasks_fennel.CeleryBackend",
    ("django_tasks_fennel", "celery"),
    13,
    "django_tasks_fennel",
)
ENGINES = {engine.name: engine for engine in (DB_WORKER, RQ, CELERY)}
