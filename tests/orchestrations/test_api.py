"""The orchestrations API: CRUD, validation errors with paths, /api/patterns, roles, isolation,
filters, audit rows and constant query counts."""

from __future__ import annotations

import pytest

from observability.models import AuditLog, Run
from orchestrations.models import Orchestration
from orchestrations.patterns import PATTERNS
from tests.accounts.factories import make_user
from tests.api_cases import APIResourceCases, Call
from tests.conftest import client_for
from tests.orchestrations.helpers import make_agent, make_orchestration, says

pytestmark = pytest.mark.django_db

MISSING_ID = "orch-" + "0" * 32
MISSING_AGENT = "agent-" + "0" * 32
BOUNDS = {
    "sequential": (2, 10),
    "parallel": (2, 20),
    "supervisor_worker": (2, 20),
    "router": (2, 10),
    "ensemble": (3, 10),
    "consensus": (3, 10),
    "debate": (3, 5),
    "handoff": (2, 5),
    "blackboard": (2, 10),
}


@pytest.fixture
def agents(member):
    return [make_agent(member.organization, f"Agent {n}") for n in range(1, 4)]


def create(client, agent_ids, **body):
    body.setdefault("name", "Support pipeline")
    body.setdefault("pattern", "sequential")
    return client.post("/api/orchestrations", {"agent_ids": agent_ids, **body}, format="json")


def config_errors(response) -> dict[str, str]:
    """The `{path: message}` of a 400 invalid_config response."""
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_config"
    assert set(error["fields"]) == {"config_yaml"}
    return {item["path"]: item["message"] for item in error["fields"]["config_yaml"]}


def ids(agents):
    return [agent.pk for agent in agents]


class TestOrchestrationAPI(APIResourceCases):
    list_path = "/api/orchestrations"
    detail_path = "/api/orchestrations/{pk}"
    reads = (Call("GET", "/api/patterns"),)
    writes = (
        Call("POST", "/api/orchestrations", {"name": "Mine", "pattern": "sequential", "agent_ids": []}),
        Call("PATCH", "/api/orchestrations/{pk}", {"name": "stolen"}),
        Call("DELETE", "/api/orchestrations/{pk}"),
        Call("POST", "/api/orchestrations/{pk}/execute", {"input": {"text": "go"}}),
    )
    list_queries = 2  # the caller, the page with its count
    detail_queries = 2  # the caller, the orchestration

    def make(self, organization):
        agents = [make_agent(organization, f"A{n}", responses=[says(answer="x")]) for n in range(2)]
        return make_orchestration(organization, "sequential", agents)


# --- create, read, update, delete ----------------------------------------------------------------


def test_member_creates_an_orchestration_with_its_config_defaults_filled_and_an_audit_row(
    auth_client, member, agents
):
    response = create(
        auth_client,
        ids(agents),
        pattern="debate",
        description="Argue it out",
        config_yaml="rounds: 3\ntimeout_s: 30\n",
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["id"].startswith("orch-") and len(body["id"]) == len("orch-") + 32
    assert (body["name"], body["description"], body["pattern"], body["status"]) == (
        "Support pipeline",
        "Argue it out",
        "debate",
        "draft",
    )
    assert body["agent_ids"] == ids(agents)
    assert body["organization_id"] == member.organization_id and body["created_by"] == member.pk
    assert body["config_yaml"] == "rounds: 3\ntimeout_s: 30\n"
    assert body["config"] == {
        "rounds": 3,
        "timeout_s": 30,
        "on_agent_error": "fail",
        "max_total_cost_usd": None,
    }
    assert body["created_at"] and body["updated_at"]
    orchestration = Orchestration.objects.get(pk=body["id"])
    assert orchestration.config == body["config"] and orchestration.agent_ids == ids(agents)
    row = AuditLog.objects.get(operation_type="create", record_id=orchestration.pk)
    assert row.model_name == "Orchestration" and row.user_id == member.pk
    assert row.changes == {
        "name": "Support pipeline",
        "pattern": "debate",
        "agent_ids": ids(agents),
        "status": "draft",
    }


def test_an_empty_config_takes_every_default_of_the_pattern(auth_client, agents):
    body = create(auth_client, ids(agents), pattern="supervisor_worker", status="active").json()
    assert body["status"] == "active"
    assert body["config"] == {
        "timeout_s": 300,
        "on_agent_error": "fail",
        "max_total_cost_usd": None,
        "routing": {"mode": "semantic"},
        "max_subtasks": 5,
    }


def test_retrieve_returns_the_orchestration_and_unknown_ids_are_404(auth_client, member, agents):
    orchestration = make_orchestration(member.organization, "parallel", agents)
    body = auth_client.get(f"/api/orchestrations/{orchestration.pk}").json()
    assert body["id"] == orchestration.pk and body["agent_ids"] == ids(agents)
    assert body["pattern"] == "parallel" and body["config"]["max_concurrency"] is None
    for path in (f"/api/orchestrations/{MISSING_ID}", "/api/orchestrations/not-an-id"):
        response = auth_client.get(path)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_patch_changes_fields_revalidates_and_audits_only_what_changed(auth_client, member, agents):
    orchestration = make_orchestration(member.organization, "sequential", agents[:2])
    response = auth_client.patch(
        f"/api/orchestrations/{orchestration.pk}",
        {
            "name": "Renamed",
            "pattern": "consensus",
            "agent_ids": ids(agents),
            "config_yaml": "threshold: unanimous\n",
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["name"], body["pattern"], body["agent_ids"]) == ("Renamed", "consensus", ids(agents))
    assert body["config"]["threshold"] == "unanimous" and body["config"]["decision_field"] is None
    orchestration.refresh_from_db()
    assert orchestration.config == body["config"]
    row = AuditLog.objects.get(operation_type="update", record_id=orchestration.pk)
    assert row.user_id == member.pk
    assert row.changes == {
        "name": "Renamed",
        "pattern": "consensus",
        "agent_ids": ids(agents),
        "config_yaml": "threshold: unanimous\n",
    }
    # The same values again change nothing and write no audit row.
    auth_client.patch(f"/api/orchestrations/{orchestration.pk}", {"name": "Renamed"}, format="json")
    assert AuditLog.objects.filter(operation_type="update", record_id=orchestration.pk).count() == 1


def test_patch_of_the_config_alone_is_validated_against_the_stored_pattern_and_agents(
    auth_client, member, agents
):
    orchestration = make_orchestration(member.organization, "handoff", agents[:2])
    response = auth_client.patch(
        f"/api/orchestrations/{orchestration.pk}", {"config_yaml": "min_confidence: 0.5\n"}, format="json"
    )
    assert config_errors(response) == {
        "confidence_field": "confidence_field and min_confidence go together: set both or neither"
    }
    # Fewer agents than the stored pattern takes.
    response = auth_client.patch(
        f"/api/orchestrations/{orchestration.pk}", {"agent_ids": ids(agents[:1])}, format="json"
    )
    assert config_errors(response) == {"agent_ids": "handoff takes 2 to 5 agents, got 1"}


def test_an_invalid_patch_changes_nothing(auth_client, member, agents):
    orchestration = make_orchestration(member.organization, "sequential", agents[:2], name="Before")
    response = auth_client.patch(
        f"/api/orchestrations/{orchestration.pk}",
        {"name": "After", "pattern": "debate"},  # debate takes at least 3 agents
        format="json",
    )
    assert config_errors(response) == {"agent_ids": "debate takes 3 to 5 agents, got 2"}
    orchestration.refresh_from_db()
    assert (orchestration.name, orchestration.pattern) == ("Before", "sequential")
    assert not AuditLog.objects.exists()


def test_delete_removes_it_and_audits(auth_client, member, agents):
    orchestration = make_orchestration(member.organization, "sequential", agents[:2], name="Doomed")
    assert auth_client.delete(f"/api/orchestrations/{orchestration.pk}").status_code == 204
    assert not Orchestration.objects.filter(pk=orchestration.pk).exists()
    row = AuditLog.objects.get(operation_type="delete", record_id=orchestration.pk)
    assert (
        row.user_id == member.pk and row.model_name == "Orchestration" and row.changes == {"name": "Doomed"}
    )
    assert auth_client.delete(f"/api/orchestrations/{orchestration.pk}").status_code == 404


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize("pattern", list(BOUNDS))
def test_too_few_agents_for_the_pattern_is_an_error_on_agent_ids(auth_client, member, pattern):
    low, high = BOUNDS[pattern]
    agents = [make_agent(member.organization, f"A{n}") for n in range(low - 1)]
    errors = config_errors(create(auth_client, ids(agents), pattern=pattern))
    assert errors == {"agent_ids": f"{pattern} takes {low} to {high} agents, got {low - 1}"}
    assert not Orchestration.objects.exists()


@pytest.mark.parametrize("pattern", list(BOUNDS))
def test_too_many_agents_for_the_pattern_is_an_error_on_agent_ids(auth_client, member, pattern):
    low, high = BOUNDS[pattern]
    agents = [make_agent(member.organization, f"A{n}") for n in range(high + 1)]
    response = create(auth_client, ids(agents), pattern=pattern)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    if high < 20:
        assert config_errors(response) == {
            "agent_ids": f"{pattern} takes {low} to {high} agents, got {high + 1}"
        }
    else:  # 20 is also the most any orchestration may list: the request itself is refused
        assert error["code"] == "validation_error" and list(error["fields"]) == ["agent_ids"]
    assert not Orchestration.objects.exists()
    # The bounds themselves are accepted.
    assert create(auth_client, ids(agents[:high]), pattern=pattern).status_code == 201
    assert create(auth_client, ids(agents[:low]), pattern=pattern).status_code == 201


def test_unknown_config_keys_are_errors_with_their_path_and_a_suggestion(auth_client, agents):
    errors = config_errors(
        create(auth_client, ids(agents), pattern="blackboard", config_yaml="max_iteration: 3\nrounds: 2\n")
    )
    assert set(errors) == {"max_iteration", "rounds"}
    assert errors["max_iteration"] == "unknown key 'max_iteration'; did you mean 'max_iterations'?"
    assert errors["rounds"] == (
        "unknown key 'rounds'; "
        "expected one of: timeout_s, on_agent_error, max_total_cost_usd, max_iterations, approval"
    )
    errors = config_errors(
        create(
            auth_client, ids(agents), pattern="supervisor_worker", config_yaml="routing: {mood: semantic}\n"
        )
    )
    assert list(errors) == ["routing.mood"]


def test_badly_typed_config_values_are_each_reported_with_their_path(auth_client, agents):
    config_yaml = (
        "timeout_s: soon\n"
        "on_agent_error: ignore\n"
        "max_total_cost_usd: -1\n"
        "routing: {mode: random}\n"
        "max_subtasks: 2.5\n"
    )
    errors = config_errors(
        create(auth_client, ids(agents), pattern="supervisor_worker", config_yaml=config_yaml)
    )
    assert errors == {
        "timeout_s": "must be a number, got a string",
        "on_agent_error": "unknown value 'ignore'; expected one of: fail, continue",
        "max_total_cost_usd": "must be greater than 0 and at most 1000000, got -1",
        "routing.mode": "unknown value 'random'; expected one of: semantic, round_robin",
        "max_subtasks": "must be an integer, got a number",
    }
    # A bool is not a number, and the sequential mapping names fields.
    errors = config_errors(
        create(
            auth_client,
            ids(agents),
            pattern="sequential",
            config_yaml="timeout_s: true\nmapping: [null, {draft: 3}]\n",
        )
    )
    assert set(errors) == {"timeout_s", "mapping[1].draft"}
    assert not Orchestration.objects.exists()


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ("- rounds\n- 2\n", "must be a mapping"),
        ("rounds: !!python/object/apply:os.system ['echo pwned']\n", "tags are not allowed"),
        ("a: &a [1]\nb: *a\n", "anchors and aliases are not allowed"),
        ("rounds: [unclosed\n", "invalid YAML"),
        ("rounds: '" + "x" * 70_000 + "'\n", "the limit is 65536"),
    ],
)
def test_config_yaml_follows_the_safety_rules_of_agent_configs(auth_client, agents, document, expected):
    errors = config_errors(create(auth_client, ids(agents), pattern="debate", config_yaml=document))
    assert any(expected in message for message in errors.values()), errors
    assert not Orchestration.objects.exists()


def test_another_organizations_agent_and_unknown_agents_are_errors_on_their_position(
    auth_client, member, other_org_owner, agents
):
    foreign = make_agent(other_org_owner.organization, "Foreign")
    errors = config_errors(create(auth_client, [agents[0].pk, foreign.pk, MISSING_AGENT], pattern="parallel"))
    assert errors == {
        "agent_ids[1]": f"no agent {foreign.pk!r} in this organization",
        "agent_ids[2]": f"no agent {MISSING_AGENT!r} in this organization",
    }
    assert not Orchestration.objects.exists()


def test_every_problem_is_listed_at_once(auth_client, other_org_owner, agents):
    foreign = make_agent(other_org_owner.organization, "Foreign")
    errors = config_errors(
        create(
            auth_client, [agents[0].pk, foreign.pk], pattern="debate", config_yaml="rounds: 99\nturns: 1\n"
        )
    )
    assert set(errors) == {"agent_ids", "rounds", "turns", "agent_ids[1]"}


def test_an_unknown_pattern_and_missing_fields_are_validation_errors(auth_client, agents):
    response = create(auth_client, ids(agents), pattern="swarm")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error" and list(error["fields"]) == ["pattern"]
    response = auth_client.post("/api/orchestrations", {"pattern": "parallel"}, format="json")
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"name", "agent_ids"}
    response = create(auth_client, ids(agents), status="retired")
    assert list(response.json()["error"]["fields"]) == ["status"]
    assert not Orchestration.objects.exists()


# --- patterns ------------------------------------------------------------------------------------


def test_patterns_lists_the_nine_with_bounds_and_roles(viewer_client):
    response = viewer_client.get("/api/patterns")
    assert response.status_code == 200
    patterns = {item["id"]: item for item in response.json()}
    assert list(patterns) == list(PATTERNS) and len(patterns) == 9
    assert {pid: (p["min_agents"], p["max_agents"]) for pid, p in patterns.items()} == BOUNDS
    assert patterns["router"]["roles"] == ["router", "specialist", "..."]
    assert patterns["supervisor_worker"]["roles"] == ["supervisor", "worker", "..."]
    assert patterns["debate"]["roles"] == ["debater", "...", "judge"]
    assert patterns["ensemble"]["roles"] == ["expert", "...", "synthesizer"]
    assert patterns["blackboard"]["roles"] == ["controller", "contributor", "..."]
    for item in patterns.values():
        assert set(item) == {"id", "name", "description", "min_agents", "max_agents", "roles"}
        assert item["name"] and item["description"] and item["roles"]


# --- roles and isolation -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("role", ["member", "admin", "owner"])
def test_members_and_above_create_change_execute_and_delete(role, organization):
    client = client_for(make_user(organization, role=role))
    agents = [make_agent(organization, f"A{n}", responses=[says(answer=f"out {n}")]) for n in range(2)]
    orchestration_id = create(client, ids(agents)).json()["id"]
    patched = client.patch(f"/api/orchestrations/{orchestration_id}", {"status": "active"}, format="json")
    assert patched.status_code == 200 and patched.json()["status"] == "active"
    executed = client.post(
        f"/api/orchestrations/{orchestration_id}/execute", {"input": {"text": "go"}}, format="json"
    )
    assert executed.status_code == 200, executed.content
    assert executed.json()["output"]["output"] == {"answer": "out 1"}
    assert client.delete(f"/api/orchestrations/{orchestration_id}").status_code == 204


def test_execute_refuses_a_non_object_input(auth_client, member, agents):
    orchestration = make_orchestration(member.organization, "sequential", agents[:2])
    for body in ({"input": ["a"]}, {"input": "text"}, {}):
        response = auth_client.post(f"/api/orchestrations/{orchestration.pk}/execute", body, format="json")
        assert response.status_code == 400 and "input" in response.json()["error"]["fields"]
    assert not Run.objects.exists()


# --- lists ---------------------------------------------------------------------------------------


def test_list_filters_by_status_and_pattern_and_searches_name_and_description(auth_client, member, agents):
    org = member.organization
    triage = make_orchestration(org, "router", agents, name="Ticket triage", status="active")
    review = make_orchestration(org, "debate", agents, name="Review", description="Debates TICKET priority")
    greeter = make_orchestration(org, "router", agents, name="Greeter", status="deprecated")

    def listed(query):
        response = auth_client.get(f"/api/orchestrations?{query}")
        assert response.status_code == 200, response.content
        return {row["id"] for row in response.json()["results"]}

    assert listed("status=active") == {triage.pk}
    assert listed("pattern=debate") == {review.pk}
    assert listed("search=ticket") == {triage.pk, review.pk}
    assert listed("search=ticket&pattern=router") == {triage.pk}
    assert listed("pattern=router&status=deprecated") == {greeter.pk}
    assert len(listed("")) == 3
    for bad in ("status=retired", "pattern=swarm"):
        response = auth_client.get(f"/api/orchestrations?{bad}")
        assert response.status_code == 400 and response.json()["error"]["code"] == "validation_error"


def test_list_is_newest_first_and_paginated(auth_client, member, agents):
    created = [make_orchestration(member.organization, "parallel", agents) for _ in range(3)]
    page = auth_client.get("/api/orchestrations?limit=2").json()
    assert (page["count"], page["page"], page["limit"]) == (3, 1, 2)
    assert [row["id"] for row in page["results"]] == [created[2].pk, created[1].pk]
    assert auth_client.get("/api/orchestrations?limit=2&page=2").json()["results"][0]["id"] == created[0].pk


def test_detail_query_count_is_constant(auth_client, member, django_assert_num_queries):
    agents = [make_agent(member.organization, f"A{n}") for n in range(10)]
    orchestration = make_orchestration(member.organization, "parallel", agents, created_by=member)
    with django_assert_num_queries(2):  # the caller, the orchestration
        assert auth_client.get(f"/api/orchestrations/{orchestration.pk}").status_code == 200
