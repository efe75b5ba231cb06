"""Configuration: where settings come from, and that mistakes are loud."""

import django
import pytest
from django.core.mail import EmailMessage, send_mail
from django.test import override_settings

from django_sendfleet.backends import EmailBackend
from django_sendfleet.conf import SendFleetSettings
from django_sendfleet.credentials.api_key import api_key_shape_warning
from django_sendfleet.exceptions import SendFleetAuthenticationError, SendFleetConfigurationError
from django_sendfleet.sandbox import SANDBOX_API_KEY
from tests.support.messages import BACKEND

pytestmark = [pytest.mark.usefixtures("sendfleet_settings"), pytest.mark.django_db]
needs_mailers = pytest.mark.skipif(django.VERSION < (6, 1), reason="MAILERS is Django 6.1+")


def test_missing_key_raises_even_with_fail_silently(sendfleet_settings, monkeypatch):
    monkeypatch.delenv("SENDFLEET_API_KEY", raising=False)
    del sendfleet_settings["API_KEY"]
    with pytest.raises(SendFleetConfigurationError, match="API key is missing"):
        send_mail("Hi", "Body", "shop@example.com", ["a@example.com"], fail_silently=True)


def test_malformed_key_raises_without_showing_the_key(sendfleet_settings):
    sendfleet_settings["API_KEY"] = "sbxlive1tooshort-secret"  # no dot
    with pytest.raises(SendFleetConfigurationError) as caught:
        EmailBackend(fail_silently=True).send_messages(
            [EmailMessage("Hi", "Body", "shop@example.com", ["a@example.com"])]
        )
    assert "tooshort" not in str(caught.value)


#: SendFleet's docs show keys like "sf_live_abc12345.XYZ..." and never the secret's alphabet.
UNUSUAL_KEYS = [
    "sf_live_abc12345.XYZ+/abcdefghijklmnopqrstuvwxyz0123==",
    "sbxlive1.tooshort-secret",
    '"sbxlive1.QuotedKeyFromAnEnvFile000000000001"',
    "sbx.live1.TwoDotsInTheKeyButOtherwiseFine00001",
]
UNUSABLE_KEYS = [
    "sbxlive1tooshort-secret-no-dot-at-all-000000000",
    "sbxlive1.Secret With Spaces In It 000000000001",
    SANDBOX_API_KEY + "\n",
    "\t",
    "sbxlive1.SecretWithANul\x00InIt000000000000001",
    "sbxlive1.SecretWithAnAccentéInIt00000000000001",
]


def message():
    return EmailMessage("Hi", "Body", "shop@example.com", ["a@example.com"])


@pytest.mark.parametrize("key", UNUSABLE_KEYS, ids=repr)
def test_a_key_that_cannot_be_right_raises_even_with_fail_silently(
    sendfleet_settings, sandbox, key
):
    sendfleet_settings["API_KEY"] = key
    with pytest.raises(SendFleetConfigurationError, match="API key is malformed") as caught:
        EmailBackend(fail_silently=True).send_messages([message()])
    for part in (key.strip(), key.partition(".")[2].strip()):
        assert not part or part not in str(caught.value)
    assert sandbox.requests == []


@pytest.mark.parametrize("key", UNUSUAL_KEYS, ids=repr)
def test_a_key_of_an_unusual_shape_is_sent_as_it_is(sendfleet_settings, sandbox, key):
    sandbox.add_key(key)
    sendfleet_settings["API_KEY"] = key
    assert EmailBackend().send_messages([message()]) == 1
    assert [request.status for request in sandbox.requests] == [200]


@pytest.mark.parametrize("key", UNUSUAL_KEYS, ids=repr)
def test_an_unusual_key_sendfleet_does_not_know_gets_its_401(sendfleet_settings, sandbox, key):
    sendfleet_settings["API_KEY"] = key
    with pytest.raises(SendFleetAuthenticationError) as caught:
        EmailBackend().send_messages([message(), message()])
    assert [request.status for request in sandbox.requests] == [401]  # the batch stopped
    assert key.partition(".")[2] not in str(caught.value)


@pytest.mark.parametrize("key", UNUSUAL_KEYS, ids=repr)
def test_the_shape_warning_describes_the_key_without_showing_it(key):
    warning = api_key_shape_warning(key)
    assert warning is not None and "Dashboard -> API Keys" in warning
    for part in key.split("."):
        assert part.strip('"') not in warning


def test_a_key_of_the_documented_shape_gets_no_warning():
    assert api_key_shape_warning(SANDBOX_API_KEY) is None


@pytest.mark.parametrize("value", ["0/min", "5/0s", "0/0s", "00/s", "0/h"])
def test_a_rate_limit_of_nothing_is_a_configuration_error_not_a_value_error(
    sendfleet_settings, sandbox, value
):
    sendfleet_settings["RATE_LIMIT"] = value
    with pytest.raises(SendFleetConfigurationError, match="RATE_LIMIT"):
        EmailBackend(fail_silently=True).send_messages([message()])
    assert sandbox.requests == []


def test_key_falls_back_to_the_environment(sendfleet_settings, monkeypatch, sandbox):
    del sendfleet_settings["API_KEY"]
    monkeypatch.setenv("SENDFLEET_API_KEY", SANDBOX_API_KEY)
    assert send_mail("Hi", "Body", "shop@example.com", ["a@example.com"]) == 1
    assert sandbox.requests[0].status == 200


def test_settings_are_read_when_used_so_override_settings_applies(sandbox):
    connection = EmailBackend()
    with override_settings(
        SENDFLEET={"API_KEY": SANDBOX_API_KEY, "API_URL": "http://127.0.0.1:1/x/"}
    ):
        assert connection.settings.api_url == "http://127.0.0.1:1/x/"
    assert connection.settings.api_url == sandbox.url


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("TIMEOUT", 0),
        ("TIMEOUT", "10"),
        ("MAX_RETRY_WAIT", -1),
        ("API_URL", "ftp://example.com/"),
        ("IGNORE_RECIPIENT_STATUS", "yes"),
        ("RATE_LIMIT", "60 per minute"),
        ("NOT_A_SETTING", 1),
    ],
)
def test_bad_values_raise_configuration_errors(sendfleet_settings, key, value):
    sendfleet_settings[key] = value
    with pytest.raises(SendFleetConfigurationError):
        EmailBackend(fail_silently=True).send_messages(
            [EmailMessage("Hi", "Body", "shop@example.com", ["a@example.com"])]
        )


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("60/min", (60, 60.0)),
        ("10/s", (10, 1.0)),
        ("10/2s", (10, 2.0)),
        ("500/h", (500, 3600.0)),
        ((10, 2), (10, 2.0)),
        (None, None),
    ],
)
def test_rate_limit_forms(sendfleet_settings, value, parsed):
    sendfleet_settings["RATE_LIMIT"] = value
    assert SendFleetSettings().rate_limit == parsed


def test_timeout_accepts_connect_and_read_seconds(sendfleet_settings):
    sendfleet_settings["TIMEOUT"] = (2, 15)
    assert SendFleetSettings().timeout == (2.0, 15.0)


@needs_mailers
def test_mailers_options_take_precedence_over_the_sendfleet_dict(settings, sandbox):
    from django.core.mail import mailers

    settings.SENDFLEET = {"API_KEY": "bad", "API_URL": "http://127.0.0.1:1/api/send/"}
    settings.MAILERS = {
        "default": {"BACKEND": BACKEND},
        "transactional": {
            "BACKEND": BACKEND,
            "OPTIONS": {"api_key": SANDBOX_API_KEY, "api_url": sandbox.url},
        },
    }
    message = EmailMessage("Hi", "Body", "shop@example.com", ["a@example.com"])
    assert message.send(using="transactional") == 1
    assert mailers["transactional"].alias == "transactional"
    assert len(sandbox.accepted) == 1


@needs_mailers
def test_unknown_mailers_option_raises_invalid_mailer(settings):
    from django.core.mail import InvalidMailer, mailers

    settings.MAILERS = {"default": {"BACKEND": BACKEND, "OPTIONS": {"api_kee": "x"}}}
    with pytest.raises(InvalidMailer, match="api_kee"):
        mailers["default"]


@needs_mailers
def test_fail_silently_is_kept_by_the_backend_not_passed_to_django(recwarn):
    connection = EmailBackend(fail_silently=True, alias="default")
    assert connection.fail_silently is True
    assert not [w for w in recwarn if "fail_silently" in str(w.message)]


def test_the_api_key_value_shows_only_its_prefix():
    from django_sendfleet.credentials.api_key import ApiKey

    key = ApiKey.parse(SANDBOX_API_KEY)
    prefix, _, secret = SANDBOX_API_KEY.partition(".")
    assert (key.prefix, key.secret.reveal()) == (prefix, secret)
    assert [part.reveal() for part in key.secrets] == [SANDBOX_API_KEY, secret]
    for shown in (str(key), repr(key), f"{key}", str([key])):
        assert prefix in shown and secret not in shown
