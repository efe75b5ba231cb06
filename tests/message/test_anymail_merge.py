"""django-anymail's ``merge_data`` and ``merge_global_data``, rendered locally (issue 22): each
recipient's subject, text and HTML with its own values, ``{{name}}`` placeholders replaced in
one pass, HTML-escaped once in the HTML, verbatim elsewhere; a placeholder without a value
refuses the message before any request."""

import html

import pytest
from django.core.mail import EmailMultiAlternatives
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from django_sendfleet.backends import EmailBackend, QueuedEmailBackend
from django_sendfleet.exceptions import SendFleetInvalidMessage
from django_sendfleet.models import SendLog
from tests.support.examples import examples

pytestmark = [pytest.mark.usefixtures("sendfleet_settings"), pytest.mark.django_db]

SENDER = "Shop <shop@example.com>"


def message(
    to=("ann@example.com",),
    subject="Hi {{name}}",
    text="Dear {{name}},",
    html_body=None,
    **attributes,
):
    msg = EmailMultiAlternatives(subject, text, SENDER, list(to))
    if html_body is not None:
        msg.attach_alternative(html_body, "text/html")
    for name, value in attributes.items():
        setattr(msg, name, value)
    return msg


@pytest.fixture(params=["EmailBackend", "QueuedEmailBackend"])
def send(request, django_capture_on_commit_callbacks):
    """Send through either backend; the queued one's task runs as its transaction commits."""
    backend_class = {"EmailBackend": EmailBackend, "QueuedEmailBackend": QueuedEmailBackend}[
        request.param
    ]

    def run(*messages):
        with django_capture_on_commit_callbacks(execute=True):
            return backend_class().send_messages(list(messages))

    return run


def sent(sandbox):
    """Recipient -> the payload the API received."""
    return {request.payload["to"]: request.payload for request in sandbox.requests}


def test_each_to_recipient_gets_its_own_values_over_the_global_ones(sandbox, send):
    msg = message(
        to=["ann@example.com", "Bob <bob@example.com>", "carol@example.com"],
        subject="{{shop}}: hi {{name}}",
        text="Dear {{ name }}, from {{shop}}",
        html_body="<p>Dear {{name}}</p>",
        merge_data={
            "ann@example.com": {"name": "Ann"},
            "bob@example.com": {"name": "Bob", "shop": "Bob's shop"},
        },
        merge_global_data={"shop": "Example", "name": "customer"},
    )
    assert send(msg) == 1
    payloads = sent(sandbox)
    assert {to: (p["subject"], p["message"], p["html"]) for to, p in payloads.items()} == {
        "ann@example.com": ("Example: hi Ann", "Dear Ann, from Example", "<p>Dear Ann</p>"),
        "bob@example.com": (
            "Bob's shop: hi Bob",
            "Dear Bob, from Bob's shop",
            "<p>Dear Bob</p>",
        ),
        "carol@example.com": (
            "Example: hi customer",
            "Dear customer, from Example",
            "<p>Dear customer</p>",
        ),
    }
    # The log shows what each recipient was sent.
    assert dict(SendLog.objects.values_list("recipient", "subject")) == {
        "ann@example.com": "Example: hi Ann",
        "bob@example.com": "Bob's shop: hi Bob",
        "carol@example.com": "Example: hi customer",
    }


def test_values_are_html_escaped_once_in_html_and_verbatim_in_text_and_subject(sandbox, send):
    value = "Tom & <b>Jerry</b> \"'&amp;"
    msg = message(
        subject="For {{name}}",
        text="Dear {{name}}",
        html_body="<p title='x'>Dear {{name}}</p>",
        merge_data={"ann@example.com": {"name": value}},
    )
    send(msg)
    [payload] = sandbox.requests
    assert payload.payload["subject"] == f"For {value}"
    assert payload.payload["message"] == f"Dear {value}"
    assert payload.payload["html"] == (
        "<p title='x'>Dear Tom &amp; &lt;b&gt;Jerry&lt;/b&gt; &quot;&#x27;&amp;amp;</p>"
    )


def test_a_value_is_never_read_as_a_placeholder_or_template_code(sandbox, send):
    msg = message(
        subject="Hello",
        text="{{a}} and {{b}}",
        merge_data={"ann@example.com": {"a": "{{b}}", "b": "{% now 'Y' %} {{ a }}"}},
    )
    send(msg)
    [request] = sandbox.requests
    assert request.payload["message"] == "{{b}} and {% now 'Y' %} {{ a }}"


@pytest.mark.parametrize(
    ("attributes", "says"),
    [
        (
            {"merge_data": {"ann@example.com": {"other": "x"}}},
            "no value for {{name}} for ann@example.com",
        ),
        (
            {"merge_global_data": {"other": "x"}},
            "no value for {{name}} for bob@example.com (global",
        ),
        ({"merge_data": {"ann@example.com": {"name": None}}}, "a NoneType; merge values"),
        ({"merge_data": {"ann@example.com": {"name": {"first": "Ann"}}}}, "a dict; merge values"),
        ({"merge_data": {"ann@example.com": {"name": "Ann\nBcc: x@evil.example"}}}, "line breaks"),
        (
            {"merge_data": {"ann@example.com": {"name": "x" * 260}}},
            "once rendered for ann@example.com",
        ),
        ({"merge_data": ["ann@example.com"]}, "merge_data: a dict"),
        ({"merge_data": {"not an address": {"name": "x"}}}, "merge_data['not an address']"),
    ],
)
def test_a_message_that_cannot_be_rendered_is_refused_before_any_request(
    sandbox, send, attributes, says
):
    msg = message(to=["bob@example.com", "ann@example.com"], **attributes)
    if "merge_data" in attributes and isinstance(attributes["merge_data"], dict):
        msg.merge_data = {**attributes["merge_data"], "bob@example.com": {"name": "Bob"}}
    with pytest.raises(SendFleetInvalidMessage) as caught:
        send(msg)
    assert says in str(caught.value)
    assert sandbox.requests == []  # not even Bob's, whose values were fine
    assert not SendLog.objects.filter(status__in=["pending", "queued"]).exists()


def test_cc_and_bcc_get_the_global_data_only(sandbox, send):
    msg = message(
        to=["ann@example.com"],
        cc=["carol@example.com"],
        bcc=["dave@example.com"],
        text="Dear {{name}}, order {{order}}",
        # carol's own values are ignored: merge_data is for to recipients, as in anymail.
        merge_data={
            "ann@example.com": {"name": "Ann", "order": "1"},
            "carol@example.com": {"name": "Carol"},
        },
        merge_global_data={"name": "colleague", "order": "(see Ann's)"},
    )
    send(msg)
    assert {to: p["message"] for to, p in sent(sandbox).items()} == {
        "ann@example.com": "Dear Ann, order 1",
        "carol@example.com": "Dear colleague, order (see Ann's)",
        "dave@example.com": "Dear colleague, order (see Ann's)",
    }


def test_a_cc_recipient_without_a_global_value_refuses_the_message(sandbox, send):
    msg = message(
        to=["ann@example.com"],
        cc=["carol@example.com"],
        merge_data={"ann@example.com": {"name": "Ann"}},
    )
    with pytest.raises(
        SendFleetInvalidMessage, match=r"no value for \{\{name\}\} for carol@example.com"
    ):
        send(msg)
    assert sandbox.requests == []


def test_a_message_without_merge_data_is_sent_as_written_next_to_a_merge_message(sandbox, send):
    merged = message(to=["ann@example.com"], merge_data={"ann@example.com": {"name": "Ann"}})
    plain = message(to=["bob@example.com"], text="Use {{ this }} literally")
    assert send(merged, plain) == 2
    assert {to: (p["subject"], p["message"]) for to, p in sent(sandbox).items()} == {
        "ann@example.com": ("Hi Ann", "Dear Ann,"),
        "bob@example.com": ("Hi {{name}}", "Use {{ this }} literally"),
    }


def test_a_queued_merge_message_stores_each_recipients_rendered_content(
    sandbox, django_capture_on_commit_callbacks
):
    msg = message(
        to=["ann@example.com", "bob@example.com"],
        merge_data={"ann@example.com": {"name": "Ann"}, "bob@example.com": {"name": "Bob"}},
    )
    with django_capture_on_commit_callbacks(execute=False):
        QueuedEmailBackend().send_messages([msg])
    rows = SendLog.objects.select_related("content").order_by("pk")
    assert [(r.subject, r.content.subject, r.content.text) for r in rows] == [
        ("Hi Ann", "Hi Ann", "Dear Ann,"),
        ("Hi Bob", "Hi Bob", "Dear Bob,"),
    ]
    assert sandbox.requests == []


# Properties: any values, any template made of literal text and placeholders.

_NAMES = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,7}", fullmatch=True)
#: What a text field can carry (NUL and lone surrogates are refused): anything else, braces,
#: placeholders and HTML included.
_VALUES = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30
) | st.sampled_from(["{{name}}", "{{ a }}", "<b>&amp;</b>", "{% if %}", "{{", "}}"])
#: Literal text between placeholders: no braces, so only the placeholders are placeholders.
_LITERALS = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00{}"), max_size=12
)


@st.composite
def templates(draw):
    """(template parts, values): parts are literal strings and ("name",) placeholders."""
    names = draw(st.lists(_NAMES, min_size=1, max_size=4, unique=True))
    values = {name: draw(_VALUES) for name in names}
    parts = []
    for _ in range(draw(st.integers(1, 6))):
        parts.append(draw(_LITERALS))
        parts.append((draw(st.sampled_from(names)),))
    parts.append(draw(_LITERALS))
    return parts, values


def _template(parts):
    return "".join(p if isinstance(p, str) else "{{" + p[0] + "}}" for p in parts)


def _expected(parts, values, escape):
    def value(name):
        return html.escape(values[name], quote=True) if escape else values[name]

    return "".join(p if isinstance(p, str) else value(p[0]) for p in parts)


@settings(
    max_examples=examples(200),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=templates(), own=st.booleans())
def test_property_the_sent_text_is_the_template_with_each_placeholder_replaced(sandbox, case, own):
    parts, values = case
    sandbox.reset()
    template = "<" + _template(parts) + ">"  # never blank, never trimmed by the API
    attributes = (
        {"merge_data": {"ann@example.com": values}} if own else {"merge_global_data": values}
    )
    msg = message(subject="Hello", text=template, html_body=template, **attributes)
    EmailBackend().send_messages([msg])
    [request] = sandbox.requests
    assert request.payload["message"] == "<" + _expected(parts, values, escape=False) + ">"
    assert request.payload["html"] == "<" + _expected(parts, values, escape=True) + ">"


@settings(max_examples=examples(300))
@given(case=templates())
def test_property_rendering_is_one_pass_and_escapes_exactly_once(case):
    from django_sendfleet.message.merge import render

    parts, values = case
    template = _template(parts)
    assert render(template, values) == _expected(parts, values, escape=False)
    # Each value escaped exactly once, the template's own text not at all.
    assert render(template, values, escape=True) == _expected(parts, values, escape=True)


@settings(max_examples=examples(100), suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.dictionaries(_NAMES, _VALUES, max_size=3), missing=_NAMES)
def test_property_a_placeholder_without_a_value_is_never_sent(sandbox, values, missing):
    values.pop(missing, None)
    sandbox.reset()
    msg = message(
        subject="Hello",
        text="Dear {{" + missing + "}}",
        merge_global_data=values or {missing + "_": "y"},
    )
    with pytest.raises(SendFleetInvalidMessage):
        EmailBackend().send_messages([msg])
    assert sandbox.requests == []


def test_a_text_that_renders_blank_is_refused_before_any_request(sandbox, send):
    msg = message(
        to=["bob@example.com", "ann@example.com"],
        subject="Hello",
        text="{{greeting}} {{name}}",
        merge_data={
            "bob@example.com": {"greeting": "Hi", "name": "Bob"},
            "ann@example.com": {"greeting": " ", "name": ""},
        },
    )
    with pytest.raises(SendFleetInvalidMessage, match="body: blank once rendered for ann@example"):
        send(msg)
    assert sandbox.requests == []
