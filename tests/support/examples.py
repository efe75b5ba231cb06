"""Hypothesis example counts under the profile loaded (tests/conftest.py registers the profiles)."""

# Hypothesis profiles, chosen by HYPOTHESIS_PROFILE. "full" (the default: the README's test
# command, and CI's Quick start run) runs every property test at its full count; "ci" (the
# other CI cells and the libfaketime runs) a tenth of it: a cell whose axis (Django, Python,
# database, clock) changes a property's result still tries it on fresh examples, and the full
# count runs once per CI run. Nothing is derandomized that was random. The deadline is 1 s, not
# 200 ms: a test's first example pays imports and the sandbox's start, and CI runs two lanes
# on 2 cores.
FULL_EXAMPLES = 100  # Hypothesis's default max_examples


def examples(full: int) -> int:
    """``max_examples`` for a property test that needs ``full`` examples under the full
    profile: scaled with the profile loaded, so a smaller profile runs fewer (never under 2)."""
    from hypothesis import settings

    return max(2, round(full * settings.default.max_examples / FULL_EXAMPLES))
