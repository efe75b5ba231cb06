"""Django's email-backend tests, unmodified, run against django-sendfleet's EmailBackend."""

from __future__ import annotations

import pytest

from . import source

if not source.requested():
    pytest.skip(
        f"Django's own email-backend tests: set {source.ENABLE_VARIABLE}=1 "
        "(downloads Django's sdist once) or run `nox -f .ci/noxfile.py -s django_mail`",
        allow_module_level=True,
    )

from .harness import ADOPTED_TESTS, build_test_classes, django_series

if django_series() not in ADOPTED_TESTS:
    pytest.skip(
        f"Django's email tests are adapted for Django {', '.join(ADOPTED_TESTS)}, "
        f"not {django_series()}",
        allow_module_level=True,
    )

globals().update(build_test_classes())
