"""studio.api.rendering: read serializers render what DRF renders, without building their fields for
every instance; a field whose rendering might read the context keeps DRF's way."""

from __future__ import annotations

import pytest
from rest_framework import serializers
from rest_framework.test import APIRequestFactory

from accounts.api.serializers import MeSerializer, UserSerializer
from agents.api.serializers import AgentReadSerializer
from studio.api.rendering import RenderedFields
from tests.agents.factories import make_agent

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
