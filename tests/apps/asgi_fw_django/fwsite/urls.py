from django.urls import path

from . import views

urlpatterns = [
    path("hello/", views.hello),
    path("echo/", views.echo),
    path("stream/", views.stream),
    path("sync/", views.sync_view),
]
