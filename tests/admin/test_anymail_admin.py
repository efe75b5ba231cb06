"""django-anymail's tags and metadata in the send log's admin (issue 22): shown on a row, and a
tag filter whose choices and query never read the whole table."""

import pytest
from django.core.mail import EmailMultiAlternatives
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from django_sendfleet.backends import EmailBackend
from django_sendfleet.models import SendLog
from tests.support.queries import assert_uses_an_index

pytestmark = [pytest.mark.usefixtures("sendfleet_settings"), pytest.mark.django_db]

CHANGELIST = "admin:django_sendfleet_sendlog_changelist"


def send(to, tags, **attributes):
    msg = EmailMultiAlternatives("Hello", "Body", "Shop <shop@example.com>", [to])
    msg.tags = tags
    for name, value in attributes.items():
        setattr(msg, name, value)
    EmailBackend().send_messages([msg])


@pytest.fixture
def tagged(sandbox):
    send("ann@example.com", ["welcome", "onboarding"], metadata={"user_id": 1})
    send("bob@example.com", ["Welcome"])
    send("carol@example.com", ["welcome-back"])
    send("dave@example.com", [])


def listed(response):
    return sorted(row.recipient for row in response.context["cl"].result_list)


def test_the_tag_filter_lists_recent_tags_and_matches_a_tag_exactly(admin_client, tagged):
    response = admin_client.get(reverse(CHANGELIST))
    choices = [choice["display"] for choice in _tag_choices(response)]
    assert choices == ["All", "Welcome", "onboarding", "welcome", "welcome-back"]
    assert listed(admin_client.get(reverse(CHANGELIST), {"tag": "welcome"})) == ["ann@example.com"]
    assert listed(admin_client.get(reverse(CHANGELIST), {"tag": "Welcome"})) == ["bob@example.com"]
    assert listed(admin_client.get(reverse(CHANGELIST), {"tag": "none-such"})) == []


def test_the_tag_pages_queries_use_an_index(admin_client, tagged):
    with CaptureQueriesContext(connection) as queries:
        admin_client.get(reverse(CHANGELIST), {"tag": "welcome"})
    sqls = [q["sql"] for q in queries if 'FROM "django_sendfleet_sendlog"' in q["sql"]]
    assert sqls
    for sql in sqls:
        assert_uses_an_index(sql)


def test_a_rows_page_shows_its_tags_and_metadata(admin_client, tagged):
    row = SendLog.objects.get(recipient="ann@example.com")
    response = admin_client.get(reverse("admin:django_sendfleet_sendlog_change", args=[row.pk]))
    assert response.status_code == 200
    assert "onboarding" in response.text and "user_id" in response.text


def _tag_choices(response):
    [spec] = [
        f
        for f in response.context["cl"].filter_specs
        if getattr(f, "parameter_name", None) == "tag"
    ]
    return list(spec.choices(response.context["cl"]))
