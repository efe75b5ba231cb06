"""Bounce and complaint rates, their levels and the reputation_changed signal, driven by the
sandbox's own webhook events (Shared SES) through the app's webhook view."""

from __future__ import annotations

import threading

import pytest
from django.core.mail import EmailMessage
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from django_sendfleet import signals
from django_sendfleet.backends import EmailBackend
from django_sendfleet.conf import SendFleetSettings
from django_sendfleet.conf.thresholds import Thresholds, parse_thresholds
from django_sendfleet.exceptions import SendFleetConfigurationError
from django_sendfleet.models import SendLog
from django_sendfleet.reputation import rates as reputation
from django_sendfleet.reputation import state as reputation_state
from django_sendfleet.reputation.state import ReputationLevel
from tests.support.reputation import seed_rows

pytestmark = [
    pytest.mark.usefixtures("sendfleet_settings"),
    pytest.mark.django_db,
    pytest.mark.sendfleet_sandbox(rate_limit=(10_000, 60)),
]

SECRET = "reputation-webhook-secret"
SENDER = "Shop <shop@example.com>"


@pytest.fixture
def webhooks(sandbox, sendfleet_settings):
    """The sandbox's events reach the app's webhook view; 10 sends and 1 event are enough to
    judge (the thresholds, not the floors, are what these tests are about)."""
    sendfleet_settings["WEBHOOK_SECRET"] = SECRET
    sendfleet_settings["REPUTATION"] = {"MIN_SENDS": 10, "MIN_EVENTS": 1}
    sandbox.configure_webhook(reverse("sendfleet-webhook"), SECRET)
    return sandbox


def recipients(good=0, bounces=0, complaints=0, soft=0, start=0):
    """Addresses the sandbox answers with a delivery, a hard bounce, a complaint or a soft
    bounce (its outcome is the local part before "+")."""
    kinds = [("ok", good), ("bounce", bounces), ("complaint", complaints), ("softbounce", soft)]
    return [f"{kind}+{start + n}@example.com" for kind, count in kinds for n in range(count)]


def send(sandbox, addresses, connection=None):
    """One message per address (so a bounce never stops another), then the events."""
    messages = [EmailMessage("Hello", "Body", SENDER, [address]) for address in addresses]
    (connection or EmailBackend()).send_messages(messages)
    sandbox.deliver_webhooks()


@pytest.fixture
def changes():
    seen = []

    def receiver(sender, **kwargs):
        seen.append((sender, kwargs))

    signals.reputation_changed.connect(receiver, weak=False)
    yield seen
    signals.reputation_changed.disconnect(receiver)


def shared():
    return reputation_state.check_now().snapshot.accounts["shared"]


# The rates and their levels.


def test_hard_bounces_and_complaints_over_the_sends_of_the_week(webhooks):
    send(webhooks, recipients(good=16, bounces=2, complaints=1, soft=1))
    account = shared()
    assert account.counts == reputation.Counts(sends=20, hard_bounces=2, complaints=1)
    assert account.bounce.value == pytest.approx(2 / 20)
    assert account.complaint.value == pytest.approx(1 / 20)
    assert SendLog.objects.filter(status="bounced").count() == 3  # the soft one is bounced too


def test_a_soft_bounce_is_marked_on_its_row_and_not_counted(webhooks):
    send(webhooks, recipients(good=10, soft=2))
    rows = SendLog.objects.filter(recipient__startswith="softbounce")
    assert set(rows.values_list("status", "error_code")) == {("bounced", "soft_bounce")}
    assert shared().counts.hard_bounces == 0
    assert shared().bounce.level == "healthy"


# The levels at each threshold: rows seeded with their outcome, as the webhook events leave
# them (test_hard_bounces_and_complaints_over_the_sends_of_the_week drives that path itself).


@pytest.fixture
def judging(sendfleet_settings):
    """Events can arrive (a webhook secret), and 10 sends and 1 event are enough to judge."""
    sendfleet_settings["WEBHOOK_SECRET"] = SECRET
    sendfleet_settings["REPUTATION"] = {"MIN_SENDS": 10, "MIN_EVENTS": 1}
    return sendfleet_settings


@pytest.mark.parametrize(
    ("bounces", "level"),
    # SES's review level is 5 %: danger there, warning from half of it (2.5 %).
    [(0, "healthy"), (1, "warning"), (2, "danger")],
)
def test_each_bounce_level_at_the_default_thresholds(judging, bounces, level):
    seed_rows(good=40 - bounces, bounces=bounces)
    account = shared()
    assert (account.bounce.level, account.complaint.level, account.level) == (
        level,
        "healthy",
        level,
    )


@pytest.mark.parametrize(("complaints", "level"), [(0, "healthy"), (1, "warning"), (2, "danger")])
def test_each_complaint_level_at_set_thresholds(judging, complaints, level):
    judging["REPUTATION"] = {"MIN_SENDS": 10, "MIN_EVENTS": 1, "COMPLAINT_RATE": (0.05, 0.1)}
    seed_rows(good=20 - complaints, complaints=complaints)
    account = shared()
    assert (account.complaint.level, account.bounce.level) == (level, "healthy")
    assert account.complaint.thresholds == (0.05, 0.1)


def test_complaints_at_the_default_thresholds_are_danger_at_a_tenth_of_a_percent(judging):
    seed_rows(good=19, complaints=1)
    assert shared().complaint.level == "danger"  # 5 %, far above SES's 0.1 % review level


def test_rates_are_kept_per_mailer_too(webhooks):
    send(webhooks, recipients(good=11))
    send(webhooks, recipients(good=8, bounces=2, start=100), EmailBackend(alias="news"))
    snapshot = reputation_state.check_now().snapshot
    assert snapshot.mailers[("shared", "default")].bounce.level == "healthy"
    news = snapshot.mailers[("shared", "news")]
    assert (news.counts.sends, news.counts.hard_bounces, news.bounce.level) == (10, 2, "danger")
    assert snapshot.accounts["shared"].counts == reputation.Counts(21, 2, 0)


def judged(sends, bounces=0, complaints=0, thresholds=None):
    return reputation.rates_of(
        "shared",
        None,
        reputation.Counts(sends, bounces, complaints),
        thresholds or Thresholds(),
        True,
    )


@pytest.mark.parametrize(
    ("sends", "complaints", "level"),
    [
        (500, 1, "warning"),  # 0.2 %: one "report spam", not danger on its own
        (100, 2, "warning"),  # 2 %: two people, still not danger
        (2_000, 5, "danger"),  # 0.25 %, five complaints: danger at the defaults
        (3_000, 3, "danger"),  # 0.1 %: the review level, three complaints
        (10_000, 3, "healthy"),  # 0.03 %
    ],
)
def test_danger_takes_min_events_at_the_default_thresholds(sends, complaints, level):
    assert judged(sends, complaints=complaints).complaint.level == level


@given(sends=st.integers(100, 10**7), bounces=st.integers(0, 1), complaints=st.integers(0, 1))
def test_one_event_never_reaches_danger_at_the_defaults(sends, bounces, complaints):
    assert judged(sends, bounces, complaints).level != "danger"


def test_min_events_zero_judges_from_the_first_event():
    assert judged(500, complaints=1, thresholds=Thresholds(min_events=0)).level == "danger"


def test_min_events_is_a_setting_checked_like_min_sends(settings):
    settings.SENDFLEET = {"REPUTATION": {"MIN_EVENTS": 5}}
    assert SendFleetSettings().reputation.min_events == 5
    with pytest.raises(SendFleetConfigurationError, match="MIN_EVENTS"):
        parse_thresholds("SENDFLEET['REPUTATION']", {"MIN_EVENTS": -1})


def test_below_min_sends_the_figure_is_shown_but_not_judged(webhooks, sendfleet_settings):
    sendfleet_settings["REPUTATION"] = {"MIN_SENDS": 100}
    send(webhooks, recipients(good=9, bounces=1))
    account = shared()
    assert account.bounce.value == pytest.approx(0.1)
    assert account.bounce.level == "unknown" and "MIN_SENDS" in account.bounce.reason


def test_rows_logged_without_a_mailer_count_for_the_account_only(webhooks):
    send(webhooks, recipients(good=10, bounces=2))
    SendLog.objects.filter(recipient__startswith="bounce").update(mailer="")
    snapshot = reputation_state.check_now().snapshot
    assert snapshot.accounts["shared"].counts.hard_bounces == 2
    assert snapshot.mailers[("shared", "default")].counts.hard_bounces == 0
    assert ("shared", "") not in snapshot.mailers


# Unknown, not zero, where no event can arrive.


@pytest.mark.sendfleet_sandbox(plan="byoc", rate_limit=(10_000, 60))
def test_byoc_rates_are_unknown_not_zero(webhooks):
    send(webhooks, recipients(good=15, bounces=5))
    account = reputation_state.check_now().snapshot.accounts["byoc"]
    assert account.counts.sends == 20
    assert account.bounce.value is None and account.complaint.value is None
    assert account.level == "unknown" and "BYOC" in account.bounce.reason


def test_without_a_webhook_secret_the_rates_are_unknown(sandbox, sendfleet_settings):
    sendfleet_settings["REPUTATION"] = {"MIN_SENDS": 1}
    send(sandbox, recipients(good=15, bounces=5))
    account = shared()
    assert account.bounce.value is None and account.level == "unknown"
    assert "WEBHOOK_SECRET" in account.bounce.reason


# The signal: once per change, not per send, across processes.


def test_the_signal_is_sent_once_when_a_level_changes(webhooks, changes):
    send(webhooks, recipients(good=20))
    reputation_state.check_now()
    assert [(k["mailer"], k["previous"], k["level"]) for _, k in changes] == [
        (None, "unknown", "healthy"),
        ("default", "unknown", "healthy"),
    ]
    changes.clear()
    send(webhooks, recipients(bounces=2, start=100))  # 2 in 22: danger
    reputation_state.check_now()
    reputation_state.check_now()
    send(webhooks, recipients(good=3, start=200))  # 2 in 25, still danger: no new signal
    reputation_state.check_now()
    [(sender, account), (_, mailer)] = changes
    assert sender is EmailBackend
    assert (account["mode"], account["mailer"], account["previous"], account["level"]) == (
        "shared",
        None,
        "healthy",
        "danger",
    )
    assert account["rates"].counts.hard_bounces == 2
    assert (mailer["mailer"], mailer["level"]) == ("default", "danger")
    assert ReputationLevel.objects.get(mode="shared", mailer="").level == "danger"


def test_the_rise_is_logged_as_a_warning_and_the_fall_announced(
    webhooks, sendfleet_settings, changes, caplog
):
    sendfleet_settings["REPUTATION"] = {"MIN_SENDS": 10, "MIN_EVENTS": 1, "BOUNCE_RATE": (0.1, 0.2)}
    send(webhooks, recipients(good=8, bounces=2))  # 20 %
    with caplog.at_level("INFO", logger="django_sendfleet"):
        reputation_state.check_now()
        changes.clear()
        send(webhooks, recipients(good=15, start=100))  # 2 in 25: 8 %
        reputation_state.check_now()
    assert [(k["mailer"], k["previous"], k["level"]) for _, k in changes] == [
        (None, "danger", "healthy"),
        ("default", "danger", "healthy"),
    ]
    logged = [(r.levelname, r.getMessage()) for r in caplog.records if "reputation" in r.msg]
    assert logged[0][0] == "WARNING" and "shared account: unknown -> danger" in logged[0][1]
    assert "bounce rate 20.00 %" in logged[0][1] and "bulk mailers are held" in logged[0][1]
    falls = [message for level, message in logged if "danger -> healthy" in message]
    assert falls and {level for level, message in logged[2:]} == {"INFO"}


def test_a_receiver_may_ask_for_the_figures_again(webhooks):
    seen = []

    def receiver(sender, **kwargs):
        seen.append(reputation_state.check_now().snapshot.accounts["shared"].level)

    signals.reputation_changed.connect(receiver, weak=False)
    try:
        send(webhooks, recipients(good=8, bounces=2))
        reputation_state.check_now()
    finally:
        signals.reputation_changed.disconnect(receiver)
    assert seen and set(seen) == {"danger"}


def test_a_process_that_read_the_old_level_changes_nothing(webhooks, changes):
    """Two processes see the same change: the compare-and-set lets one of them store it."""
    send(webhooks, recipients(good=8, bounces=2))
    stale = {}  # what a second process read before the first stored anything
    snapshot = reputation_state.check_now().snapshot  # the first process
    differing = reputation_state.differences(stale, snapshot)
    assert {change.level for change in differing} == {"danger"}  # it saw the change too...
    assert reputation_state.record(differing) == []  # ...but the first one stored it
    assert len(changes) == 2


@pytest.mark.django_db(transaction=True)
def test_processes_refreshing_at_once_announce_a_change_once(webhooks, changes, monkeypatch):
    send(webhooks, recipients(good=8, bounces=2))
    threads = 4
    # Every "process" reads the stored levels before any computes its figures and stores.
    barrier = threading.Barrier(threads)
    compute = reputation.compute

    def compute_together(*args, **kwargs):
        barrier.wait(timeout=10)
        return compute(*args, **kwargs)

    monkeypatch.setattr(reputation, "compute", compute_together)
    errors = []

    def process():
        try:
            reputation_state._refresh()
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)
        finally:
            from django.db import connection

            connection.close()

    workers = [threading.Thread(target=process) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=30)
    assert errors == []
    assert sorted((k["mailer"] or "", k["level"]) for _, k in changes) == [
        ("", "danger"),
        ("default", "danger"),
    ]


@pytest.mark.django_db(transaction=True)
def test_a_change_seen_inside_a_rolled_back_transaction_is_still_announced_once(webhooks, changes):
    from django.db import connection, transaction

    if connection.vendor != "postgresql":
        pytest.skip("SQLite records inside the caller's transaction (durable.py)")
    send(webhooks, recipients(good=8, bounces=2))

    class Rollback(Exception):
        pass

    with pytest.raises(Rollback), transaction.atomic():  # a view under ATOMIC_REQUESTS
        reputation_state.check_now()
        raise Rollback
    reputation_state.check_now()
    assert sorted((k["mailer"] or "", k["level"]) for _, k in changes) == [
        ("", "danger"),
        ("default", "danger"),
    ]


# Settings.


@pytest.mark.parametrize(
    "value",
    [
        {"BOUNCE_RATE": (0.05, 0.025)},  # warning above danger
        {"BOUNCE_RATE": (5, 10)},  # percentages, not fractions
        {"COMPLAINT_RATE": 0.001},
        {"MIN_SENDS": -1},
        {"BOUNCE": (0.01, 0.02)},
        "strict",
    ],
)
def test_bad_thresholds_are_refused(settings, value):
    settings.SENDFLEET = {"REPUTATION": value}
    with pytest.raises(SendFleetConfigurationError, match="REPUTATION"):
        SendFleetSettings().reputation  # noqa: B018


@given(
    value=st.one_of(
        st.none(),
        st.dictionaries(
            st.sampled_from(["BOUNCE_RATE", "COMPLAINT_RATE", "MIN_SENDS", "OTHER"]),
            st.one_of(
                st.tuples(st.floats(allow_nan=True), st.floats(allow_nan=True)),
                st.lists(st.one_of(st.integers(), st.floats(), st.booleans(), st.text())),
                st.integers(),
                st.booleans(),
                st.text(max_size=5),
                st.none(),
            ),
        ),
        st.text(max_size=5),
        st.integers(),
    )
)
def test_any_reputation_setting_is_read_or_refused_with_a_configuration_error(value):
    try:
        thresholds = parse_thresholds("SENDFLEET['REPUTATION']", value)
    except SendFleetConfigurationError:
        return
    for warning, danger in (thresholds.bounce, thresholds.complaint):
        assert 0 < warning <= danger <= 1
    assert thresholds.min_sends >= 0


def test_thresholds_default_to_half_and_all_of_ses_review_levels(settings):
    settings.SENDFLEET = {}
    assert SendFleetSettings().reputation == Thresholds(
        bounce=(0.025, 0.05), complaint=(0.0005, 0.001), min_sends=100, min_events=3
    )
    settings.SENDFLEET = {"REPUTATION": {"BOUNCE_RATE": (0.01, 0.02)}}
    assert SendFleetSettings().reputation.bounce == (0.01, 0.02)
    assert SendFleetSettings().reputation.complaint == (0.0005, 0.001)


def test_bulk_is_a_mailer_option_and_a_boolean(settings):
    assert SendFleetSettings({"bulk": True}).bulk is True
    assert SendFleetSettings().bulk is False
    with pytest.raises(SendFleetConfigurationError, match="bulk must be True or False"):
        SendFleetSettings({"bulk": "yes"}).bulk  # noqa: B018
    with pytest.raises(SendFleetConfigurationError, match="Unknown SendFleet options"):
        SendFleetSettings({"reputation": {}})
