"""The cases every API resource's tests inherit (NetBox's `APIViewTestCases` idea).

A resource declares its URLs, a factory for one of its objects in a given organization, the roles
that may read and write it and its pinned query counts; a test class that inherits
`APIResourceCases` then checks, for every declared request:

- without credentials: 401 `not_authenticated`;
- the caller's role reads;
- each role below the one a request needs: 403 `permission_denied`, and nothing changes;
- another organization's object: 404 `not_found` on every request about it, absent from the
  list, and nothing changes;
- the list's query count is the same for 1 and for many objects, and the detail's is pinned;
- the list and the detail render byte for byte what DRF's own serializer rendering gives, through
  `studio.api.rendering`'s compiled plans (`drf_rendering` names the reason where they are not).

    class TestAgentAPI(APIResourceCases):
        list_path = "/api/agents"
        detail_path = "/api/agents/{pk}"
        writes = (Call("POST", "/api/agents", {...}), Call("DELETE", "/api/agents/{pk}"))
        list_queries = 2
        detail_queries = 2

        def make(self, organization):
            return make_agent(organization)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from observability.models import AuditLog, Run
from studio.api.permissions import ROLES
from studio.api.rendering import RenderedFields
from tests.accounts.factories import make_user
from tests.conftest import client_for

MANY = 15  # "many" objects for the list query count


@dataclass(frozen=True)
class Call:
    """One request of a resource. `path` may hold `{pk}` (or be a function of the object): the
    request is then about that object."""

    method: str
    path: str | Callable[[Any], str]
    body: dict[str, Any] | None = None

    @property
    def is_about_an_object(self) -> bool:
        return callable(self.path) or "{pk}" in self.path

    def url(self, obj) -> str:
        return self.path(obj) if callable(self.path) else self.path.format(pk=obj.pk)

    def send(self, client, obj):
        send = getattr(client, self.method.lower())
        if self.method == "GET":
            return send(self.url(obj))
        return send(self.url(obj), self.body, format="json")


def assert_error(response, status: int, code: str, call: Call) -> None:
    assert response.status_code == status, (call.method, call.path, response.content)
    assert response.json()["error"]["code"] == code, (call.method, call.path)


def with_limit(path: str, limit: int = 100) -> str:
    return f"{path}{'&' if '?' in path else '?'}limit={limit}"


def listed_ids(response) -> set[str]:
    assert response.status_code == 200, response.content
    return {row["id"] for row in response.json()["results"]}


def roles_below(role: str) -> tuple[str, ...]:
    return ROLES[: ROLES.index(role)]


def snapshot(obj) -> tuple:
    """What a refused request must not change: the object's row, the audit trail and the runs."""
    return (
        type(obj).objects.filter(pk=obj.pk).values().first(),
        type(obj).objects.count(),
        AuditLog.objects.count(),
        Run.objects.count(),
    )


class APIResourceCases:
    list_path: str | None = None
    detail_path: str | None = None  # with {pk}
    reads: tuple[Call, ...] = ()  # further GETs: about the object ({pk}) or not
    writes: tuple[Call, ...] = ()  # every request that needs write_role
    read_role = "viewer"
    write_role = "member"
    list_queries: int | None = None  # for the list, with 1 and with MANY objects
    detail_queries: int | None = None
    drf_rendering: str | None = None  # why the reads render the DRF way, if they do

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for path, count in (("list_path", "list_queries"), ("detail_path", "detail_queries")):
            if getattr(cls, path) and getattr(cls, count) is None:
                raise TypeError(f"{cls.__name__} has a {path}: pin its {count}.")
        # Only the cases that apply to the resource are collected.
        if not cls.list_path:
            cls.test_list_query_count_is_constant = None
        if not cls.detail_path:
            cls.test_detail_query_count_is_pinned = None
        if not (cls.list_path or cls.detail_path):
            cls.test_reads_render_as_drf_renders_them = None
        if not cls._guarded_calls():
            cls.test_a_role_below_the_one_required_is_403_and_changes_nothing = None

    def make(self, organization):
        """One object of the resource in `organization`."""
        raise NotImplementedError

    @classmethod
    def _reads(cls) -> tuple[Call, ...]:
        pages = (cls.list_path, cls.detail_path)
        return (*(Call("GET", path) for path in pages if path), *cls.reads)

    @classmethod
    def _guarded_calls(cls) -> list[tuple[str, Call]]:
        """(role, request) for each request and each role below the one it needs."""
        return [
            (role, call)
            for required, calls in ((cls.read_role, cls._reads()), (cls.write_role, cls.writes))
            for role in roles_below(required)
            for call in calls
        ]

    def test_unauthenticated_requests_are_401(self, api_client, organization):
        obj = self.make(organization)
        for call in (*self._reads(), *self.writes):
            assert_error(call.send(api_client, obj), 401, "not_authenticated", call)

    def test_the_read_role_reads(self, organization):
        obj = self.make(organization)
        client = client_for(make_user(organization, role=self.read_role))
        for call in self._reads():
            response = call.send(client, obj)
            assert response.status_code == 200, (call.method, call.path, response.content)

    def test_a_role_below_the_one_required_is_403_and_changes_nothing(self, organization):
        obj = self.make(organization)
        clients = {role: client_for(make_user(organization, role=role)) for role in ROLES}
        before = snapshot(obj)
        for role, call in self._guarded_calls():
            assert_error(call.send(clients[role], obj), 403, "permission_denied", call)
        assert snapshot(obj) == before

    def test_another_organizations_object_is_404_everywhere_and_unlisted(self, owner, other_org_owner):
        mine, theirs = self.make(owner.organization), self.make(other_org_owner.organization)
        client = client_for(owner)
        if self.list_path:
            listed = listed_ids(client.get(with_limit(self.list_path)))
            assert mine.pk in listed and theirs.pk not in listed
        before = snapshot(theirs)
        for call in (*self._reads(), *self.writes):
            if call.is_about_an_object:
                assert_error(call.send(client, theirs), 404, "not_found", call)
        assert snapshot(theirs) == before

    @pytest.mark.parametrize("n", [1, MANY])
    def test_list_query_count_is_constant(self, n, owner, django_assert_num_queries):
        made = {self.make(owner.organization).pk for _ in range(n)}
        client = client_for(owner)
        with django_assert_num_queries(self.list_queries):
            response = client.get(with_limit(self.list_path))
        assert made <= listed_ids(response)

    def test_detail_query_count_is_pinned(self, owner, django_assert_num_queries):
        obj = self.make(owner.organization)
        client = client_for(owner)
        with django_assert_num_queries(self.detail_queries):
            response = client.get(self.detail_path.format(pk=obj.pk))
        assert response.status_code == 200, response.content

    def test_reads_render_as_drf_renders_them(self, owner, monkeypatch):
        made = [self.make(owner.organization) for _ in range(3)]
        client = client_for(owner)
        paths = [with_limit(self.list_path)] if self.list_path else []
        paths += [self.detail_path.format(pk=made[0].pk)] if self.detail_path else []
        compiled = set()
        plan_of = RenderedFields.render_plan.__func__

        def recorded(cls):
            plan = plan_of(cls)
            if plan is not None:
                compiled.add(cls)
            return plan

        monkeypatch.setattr(RenderedFields, "render_plan", classmethod(recorded))
        rendered = {path: client.get(path) for path in paths}
        monkeypatch.setattr(RenderedFields, "render_plan", classmethod(lambda cls: None))
        for path, response in rendered.items():
            assert response.status_code == 200, (path, response.content)
            assert response.content == client.get(path).content, path
        assert bool(compiled) == (self.drf_rendering is None), (compiled, self.drf_rendering)
