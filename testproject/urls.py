from django.contrib import admin
from django.urls import include, path

from . import views

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("sendfleet/", include("django_sendfleet.urls")),
    path("shop/receipt/", views.send_receipt, name="send-receipt"),
]
