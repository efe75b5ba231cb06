"""The database each of the package's writes and transactions goes to: the one the project's
``DATABASE_ROUTERS`` pick for the model written (``default`` without routers)."""

from __future__ import annotations

from collections.abc import Callable

from django.db import models, router, transaction


def db_for(model: type[models.Model]) -> str:
    """The alias the routers pick for writing ``model``."""
    return router.db_for_write(model)


def atomic_for(model: type[models.Model], *, savepoint: bool = True) -> transaction.Atomic:
    """A transaction (a savepoint inside one) on ``model``'s database."""
    return transaction.atomic(using=db_for(model), savepoint=savepoint)


def on_commit_for(
    model: type[models.Model], func: Callable[[], object], *, robust: bool = False
) -> None:
    """Run ``func`` when the transaction on ``model``'s database commits (at once outside one)."""
    transaction.on_commit(func, using=db_for(model), robust=robust)
