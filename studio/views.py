"""Operator endpoints: health and Prometheus metrics."""

from __future__ import annotations

import hmac

import prometheus_client
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpResponse, JsonResponse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.permissions import AllowAny

from studio.api.errors import json_error

HEALTH_SCHEMA = inline_serializer(
    "Health",
    {"status": serializers.CharField(), "checks": serializers.DictField(child=serializers.CharField())},
)


def _check(probe) -> str:
    try:
        probe()
    except Exception as exc:  # any failure of the dependency means "down"
        return f"down: {type(exc).__name__}"
    return "ok"


def _database_probe() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _redis_probe() -> None:
    cache.set("health:probe", 1, timeout=5)
    if cache.get("health:probe") != 1:
        raise ConnectionError("cache did not return the probe")


@extend_schema(responses={200: HEALTH_SCHEMA, 503: HEALTH_SCHEMA}, tags=["operators"])
@api_view(["GET"])
@authentication_classes([])
@permission_classes([AllowAny])
def health(request):
    """Database and (when configured) Redis reachability; 503 when one is down."""
    checks = {"database": _check(_database_probe)}
    checks["redis"] = _check(_redis_probe) if settings.REDIS_URL else "not configured"
    healthy = all(value in ("ok", "not configured") for value in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks}, status=200 if healthy else 503
    )


@extend_schema(responses={200: HEALTH_SCHEMA}, tags=["operators"])
@api_view(["GET"])
@authentication_classes([])
@permission_classes([AllowAny])
def liveness(request):
    """The process answers (no dependency checked): a liveness probe."""
    return JsonResponse({"status": "ok", "checks": {}})


def metrics(request):
    """Prometheus exposition for staff sessions or a bearer `STUDIO_METRICS_TOKEN`."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    token_ok = bool(settings.METRICS_TOKEN) and hmac.compare_digest(
        header.encode(), f"Bearer {settings.METRICS_TOKEN}".encode()
    )
    if not (token_ok or (request.user.is_authenticated and request.user.is_staff)):
        return json_error(403, "permission_denied", "Metrics are for operators only.")
    return HttpResponse(
        prometheus_client.generate_latest(), content_type=prometheus_client.CONTENT_TYPE_LATEST
    )
