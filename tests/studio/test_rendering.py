"""studio.api.rendering: read serializers render what DRF renders, without building their fields for
every instance nor DRF's calls per value; a field whose rendering might read the context keeps
DRF's way. Every resource's list and detail are compared byte for byte with DRF's rendering by its
APIResourceCases (tests/api_cases.py); the lists under an object are compared here."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone
from rest_framework import serializers
from rest_framework.test import APIRequestFactory

from accounts.api.serializers import MeSerializer, UserSerializer
from agents.api.serializers import AgentReadSerializer, AgentVersionSerializer
from agents.models import AgentVersion
from deployments.api.webhook_serializers import WebhookDeliverySerializer
from studio.api.openapi import operations
from studio.api.rendering import RenderedFields
from tests.agents.factories import make_agent
from tests.conftest import client_for
from tests.deployments.factories import make_delivery, make_webhook

pytestmark = pytest.mark.django_db


def drf_rendering(serializer, instance) -> dict:
    """What DRF's own Serializer.to_representation renders (fields built for this instance)."""
    return serializers.Serializer.to_representation(serializer, instance)


def test_an_agent_renders_as_drf_renders_it(member):
    agent = make_agent(member.organization, created_by=member)
    serializer = AgentReadSerializer(agent)
    assert serializer.data == drf_rendering(AgentReadSerializer(agent), agent)
    assert serializer.data["created_by"] == member.pk and serializer.data["created_at"].endswith("Z")


def test_a_list_renders_each_row_as_drf_renders_it(member):
    agents = [make_agent(member.organization, name=f"a{i}") for i in range(3)]
    rendered = AgentReadSerializer(agents, many=True).data
    assert rendered == [drf_rendering(AgentReadSerializer(agent), agent) for agent in agents]


def test_context_dependent_method_fields_read_the_rendering_serializers_context(member, viewer):
    member.preferences = {"theme": "dark"}
    request = APIRequestFactory().get("/api/users")
    request.user = member
    context = {"request": request}

    own, other = UserSerializer([member, viewer], many=True, context=context).data

    assert own["preferences"] == {"theme": "dark"} and other["preferences"] is None
    assert own == drf_rendering(UserSerializer(member, context=context), member)
    me = MeSerializer(member).data  # nested organization, own preferences
    assert me == drf_rendering(MeSerializer(member), member)
    assert me["organization"]["id"] == member.organization_id


class ReadsTheContext(serializers.CharField):
    def to_representation(self, value):
        return f"{value} for {self.context['request'].user.pk}"


class WithAFieldOfItsOwn(RenderedFields, serializers.Serializer):
    name = ReadsTheContext()


class NestingIt(RenderedFields, serializers.Serializer):
    inner = WithAFieldOfItsOwn(source="*")


def test_a_field_that_may_read_the_context_renders_the_drf_way(member):
    request = APIRequestFactory().get("/")
    request.user = member
    assert WithAFieldOfItsOwn.render_plan() is None and NestingIt.render_plan() is None
    rendered = NestingIt({"name": "x"}, context={"request": request}).data
    assert rendered == {"inner": {"name": f"x for {member.pk}"}}


class AtAnyTime(RenderedFields, serializers.Serializer):
    at = serializers.DateTimeField()
    local = serializers.DateTimeField(default_timezone=dt.timezone(dt.timedelta(hours=2)))
    day = serializers.DateTimeField(format="%Y-%m-%d")


@pytest.mark.parametrize(
    "moment",
    [
        dt.datetime(2026, 12, 7, 9, 30, 1, 123456, tzinfo=dt.UTC),
        dt.datetime(2026, 12, 7, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
        dt.datetime(2026, 12, 7, 9, 30),  # naive: made aware in the current time zone, as DRF does
        "2026-12-07T09:30:00+00:00",  # a string is shown as it is
    ],
)
def test_datetimes_render_as_drf_renders_them_in_any_zone(moment):
    row = {"at": moment, "local": moment, "day": moment}
    assert AtAnyTime(row).data == drf_rendering(AtAnyTime(row), row)
    with timezone.override("Europe/Paris"):
        assert AtAnyTime(row).data == drf_rendering(AtAnyTime(row), row)


def drf_bytes_too(client, monkeypatch, path) -> bytes:
    """The response to `path`, after checking DRF's own rendering gives the same bytes."""
    rendered = client.get(path)
    assert rendered.status_code == 200, rendered.content
    with monkeypatch.context() as patch:
        patch.setattr(RenderedFields, "render_plan", classmethod(lambda cls: None))
        assert client.get(path).content == rendered.content
    return rendered.content


def test_the_lists_under_an_object_render_as_drf_renders_them(owner, monkeypatch):
    agent = make_agent(owner.organization, created_by=owner)
    for minor in range(3):
        AgentVersion.objects.create(
            agent=agent, version=f"1.{minor}.0", config_yaml=agent.config_yaml, config=agent.config
        )
    webhook = make_webhook(owner.organization)
    attempt = {"at": timezone.now().isoformat(), "status_code": 500, "error": "", "duration_ms": 12}
    make_delivery(webhook, attempt_log=[attempt], attempts=1, status_code=500)
    make_delivery(webhook, next_attempt_at=None, delivered_at=timezone.now())
    client = client_for(owner)

    versions = drf_bytes_too(client, monkeypatch, f"/api/agents/{agent.pk}/versions")
    deliveries = drf_bytes_too(client, monkeypatch, f"/api/webhooks/{webhook.pk}/deliveries")

    assert versions.count(b'"version"') == 3 and deliveries.count(b'"duration_ms":12') == 1
    assert AgentVersionSerializer.render_plan() and WebhookDeliverySerializer.render_plan()


# Every paginated list of the API: its resource's APIResourceCases (list_path), or the test above.
LISTS = {
    "/api/agents",
    "/api/agents/{id}/versions",
    "/api/approvals",
    "/api/audit",
    "/api/deployments",
    "/api/orchestrations",
    "/api/providers",
    "/api/runtime/agents",
    "/api/templates/agents",
    "/api/templates/orchestrations",
    "/api/tools/mcp-servers",
    "/api/traces",
    "/api/users",
    "/api/webhooks",
    "/api/webhooks/{id}/deliveries",
}


def test_every_list_of_the_api_is_compared_with_drfs_rendering(api_client):
    document = api_client.get("/api/schema?format=json").json()
    paginated = set()
    for path, method, operation in operations(document):
        content = operation["responses"].get("200", {}).get("content", {})
        for media in content.values():
            if method == "get" and "Paginated" in media["schema"].get("$ref", ""):
                paginated.add(path)
    assert paginated == LISTS


class Doubled(serializers.IntegerField):
    context_free = True  # reads only the instance: on the plan, with its own get_attribute

    def get_attribute(self, instance):
        return super().get_attribute(instance) * 2


class WithAReadingOfItsOwn(RenderedFields, serializers.Serializer):
    n = Doubled()


def test_a_context_free_field_of_ours_renders_on_the_plan_with_its_own_methods():
    assert WithAReadingOfItsOwn.render_plan() is not None
    assert WithAReadingOfItsOwn({"n": 2}).data == {"n": 4}
