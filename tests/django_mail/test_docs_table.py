"""docs/django-mail-tests.md shows the table the harness runs by (no download needed)."""

from django_sendfleet.exceptions import SendFleetError

from .cannot_apply import CANNOT_APPLY, DOCS_PAGE, LOSSES, PENDING, render_table, table_in_docs


def test_the_docs_table_is_the_harness_table():
    assert table_in_docs(DOCS_PAGE.read_text()) == render_table(), (
        "Rewrite it: python -m tests.django_mail.cannot_apply"
    )


def test_each_row_is_refused_by_a_sendfleet_error_or_is_a_documented_loss():
    for row in CANNOT_APPLY.values():
        if row.refused_by is None:
            assert row.loss in LOSSES, row
        else:
            assert issubclass(row.refused_by, SendFleetError) and row.loss is None, row
            assert row.detail, f"{row.test}: say what the refusal names"


def test_a_run_with_a_body_is_of_a_test_that_has_none():
    for row in CANNOT_APPLY.values():
        if row.test.endswith("_with_body"):
            base = CANNOT_APPLY[row.test.removesuffix("_with_body")]
            assert base.with_body and set(row.django) <= set(base.django), row


def test_pending_tests_are_not_in_the_table():
    assert not set(PENDING) & set(CANNOT_APPLY)
