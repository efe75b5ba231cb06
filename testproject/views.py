"""A view that sends email, as a shop's checkout would: used by bench/bench_queued_view.py."""

from django.core.mail import send_mail
from django.http import HttpRequest, JsonResponse
from django.views.decorators.http import require_POST


@require_POST
def send_receipt(request: HttpRequest) -> JsonResponse:
    sent = send_mail(
        "Your receipt",
        "Thanks for your order.",
        None,
        [request.POST.get("email", "customer@example.com")],
    )
    return JsonResponse({"sent": sent})
