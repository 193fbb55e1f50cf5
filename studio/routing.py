from django.urls import path

from studio.consumers import PingConsumer

websocket_urlpatterns = [
    path("api/ws/ping", PingConsumer.as_asgi()),
]
