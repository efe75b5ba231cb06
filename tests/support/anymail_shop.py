"""A shop's email code, written for django-anymail, ported to django-sendfleet by one line: the
import of the ``tracking`` signal (tests/backends/test_anymail_app.py runs it against the sandbox).

Everything else is as anymail's docs write it: an ``AnymailMessage`` with ``send_at``, ``tags``,
``metadata``, ``merge_data``, ``merge_global_data`` and ``merge_metadata``, the outcome read from
``anymail_status``, and a tracking receiver that reads ``event.tags`` and ``event.metadata``.
"""

from anymail.message import AnymailMessage

from django_sendfleet.signals import tracking  # was: from anymail.signals import tracking

#: What the shop records from tracking events: (event type, recipient, tags, order id, batch).
DELIVERY_NOTES: list[tuple[str, str, list[str], object, object]] = []


def send_shipping_notices(orders, send_at=None):
    """One batch send: each customer gets their own message, rendered with their values."""
    message = AnymailMessage(
        subject="{{shop}}: order {{order}} has shipped",
        body="Hi {{name}}, your order {{order}} is on its way.",
        from_email="Example Shop <shop@example.com>",
        to=[order["email"] for order in orders],
    )
    message.attach_alternative(
        "<p>Hi {{name}}, your order <b>{{order}}</b> is on its way.</p>", "text/html"
    )
    message.merge_global_data = {"shop": "Example Shop"}
    message.merge_data = {
        order["email"]: {"name": order["name"], "order": order["number"]} for order in orders
    }
    message.merge_metadata = {order["email"]: {"order_id": order["id"]} for order in orders}
    message.tags = ["shipping"]
    message.metadata = {"batch": "december"}
    if send_at is not None:
        message.send_at = send_at
    message.send()
    return message.anymail_status


def handle_tracking(sender, event, esp_name, **kwargs):
    """Connected to ``tracking`` in the app's ``AppConfig.ready()``."""
    if "shipping" in event.tags:
        DELIVERY_NOTES.append(
            (
                event.event_type,
                event.recipient,
                event.tags,
                event.metadata.get("order_id"),
                event.metadata.get("batch"),
            )
        )


def connect():
    tracking.connect(handle_tracking)


def disconnect():
    tracking.disconnect(handle_tracking)
