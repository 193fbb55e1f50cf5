"""The audit trail survives its actors: staff edits in /admin/ are audited with who acted, and rows
outlive the users and organizations they name and cannot be changed or deleted."""

from __future__ import annotations

import pytest

from accounts.models import Organization, User
from observability.models import AuditLog, AuditLogIsAppendOnly
from orchestrations.models import Orchestration
from tests.accounts.factories import make_organization, make_user
from tests.conftest import client_for
from tests.orchestrations.helpers import make_agent, make_orchestration
from tests.templates.factories import make_agent_template

pytestmark = pytest.mark.django_db


def form_data(page) -> dict:
    """What a operator_browser posts back from an admin change page as shown: the main form and every inline
    formset (management form included), each field with its current value."""
    forms = [page.context["adminform"].form]
    for inline in page.context["inline_admin_formsets"]:
        forms += [inline.formset.management_form, *inline.formset.forms]
    data: dict = {}
    for form in forms:
        for bound in form:
            if bound.field.disabled:
                continue
            value = bound.value()
            if isinstance(value, bool) or bound.widget_type == "checkbox":
                if value:
                    data[bound.html_name] = "on"
            elif isinstance(value, list | tuple):
                data[bound.html_name] = [str(item) for item in value]
            else:
                data[bound.html_name] = "" if value is None else str(value)
    return data


def post_change(operator_browser, path: str, **changes) -> None:
    page = operator_browser.get(path)
    assert page.status_code == 200
    response = operator_browser.post(path, {**form_data(page), **changes})
    assert response.status_code == 302, getattr(response, "context", {}) and response.context.get("errors")


def rows(operation: str, record_id: str) -> list[AuditLog]:
    return list(AuditLog.objects.filter(operation_type=operation, record_id=record_id))


def test_a_role_and_staff_change_in_the_admin_is_audited_with_the_actor_and_the_changed_fields(
    operator_browser, operator, member
):
    post_change(operator_browser, f"/admin/accounts/user/{member.pk}/change/", role="admin", is_staff="on")

    member.refresh_from_db()
    assert member.role == "admin" and member.is_staff
    (row,) = rows("update", member.pk)
    assert row.user_id == operator.pk and row.actor_email == "root@example.com"
    assert row.organization_id == member.organization_id and row.model_name == "User"
    assert row.changes["role"] == "admin" and row.changes["is_staff"] is True
    assert "name" not in row.changes  # only what changed


def test_moving_a_user_to_another_organization_in_the_admin_is_audited(operator_browser, member):
    elsewhere = make_organization(name="Elsewhere")

    post_change(operator_browser, f"/admin/accounts/user/{member.pk}/change/", organization=elsewhere.pk)

    (row,) = rows("update", member.pk)
    assert row.changes["organization"] == elsewhere.pk


def test_a_role_changed_in_the_members_of_an_organization_page_is_audited(operator_browser, operator, member):
    path = f"/admin/accounts/organization/{member.organization_id}/change/"
    page = operator_browser.get(path)
    data = form_data(page)
    (role_field,) = [name for name, value in data.items() if name.endswith("-role") and value == "member"]
    post_change(operator_browser, path, **{role_field: "owner"})

    member.refresh_from_db()
    assert member.role == "owner"
    (row,) = rows("update", member.pk)
    assert row.actor_email == operator.email and row.changes["role"] == "owner"


def test_a_password_set_by_an_operator_is_audited_without_the_password(operator_browser, member):
    response = operator_browser.post(
        f"/admin/accounts/user/{member.pk}/password/",
        {"password1": "A-new-secret-9431", "password2": "A-new-secret-9431", "usable_password": "true"},
    )
    assert response.status_code == 302

    (row,) = rows("update", member.pk)
    assert set(row.changes) == {"via", "password"}
    assert "A-new-secret-9431" not in str(row.changes)


def test_orchestration_edits_and_deletes_in_the_admin_are_audited(operator_browser, operator, organization):
    agents = [make_agent(organization, "Writer"), make_agent(organization, "Editor")]
    orchestration = make_orchestration(organization, "sequential", agents, name="Pipeline")
    path = f"/admin/orchestrations/orchestration/{orchestration.pk}/change/"

    post_change(operator_browser, path, name="Renamed pipeline")
    (update,) = rows("update", orchestration.pk)
    assert update.changes["name"] == "Renamed pipeline" and update.actor_email == operator.email

    deleted = operator_browser.post(
        f"/admin/orchestrations/orchestration/{orchestration.pk}/delete/", {"post": "yes"}
    )
    assert deleted.status_code == 302 and not Orchestration.objects.exists()
    (delete,) = rows("delete", orchestration.pk)
    assert delete.organization_id == organization.pk and delete.changes["name"] == "Renamed pipeline"


def test_templates_deleted_with_the_admin_bulk_action_are_audited(operator_browser, organization):
    templates = [make_agent_template(organization), make_agent_template(organization)]

    response = operator_browser.post(
        "/admin/templates/agenttemplate/",
        {"action": "delete_selected", "_selected_action": [t.pk for t in templates], "post": "yes"},
    )

    assert response.status_code == 302
    assert {row.record_id for row in AuditLog.objects.filter(operation_type="delete")} == {
        t.pk for t in templates
    }


def test_deleting_the_acting_user_keeps_their_rows_with_their_email(operator_browser, organization):
    admin = make_user(organization, role="admin", email="acting-admin@example.com")
    target = make_user(organization, role="member")
    assert (
        client_for(admin).patch(f"/api/users/{target.pk}", {"role": "viewer"}, format="json").status_code
        == 200
    )

    deleted = operator_browser.post(f"/admin/accounts/user/{admin.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302 and not User.objects.filter(pk=admin.pk).exists()

    (row,) = rows("update", target.pk)
    assert row.user_id == admin.pk and row.actor_email == "acting-admin@example.com"
    owner = make_user(organization, role="owner")
    listed = client_for(owner).get("/api/audit", {"operation_type": "update"}).json()["results"]
    assert [
        (r["record_id"], r["user_id"], r["user_email"]) for r in listed if r["record_id"] == target.pk
    ] == [(target.pk, admin.pk, "acting-admin@example.com")]


def test_deleting_an_organization_keeps_its_audit_rows(
    operator_browser, operator, organization, owner, member
):
    assert (
        client_for(owner).patch(f"/api/users/{member.pk}", {"role": "viewer"}, format="json").status_code
        == 200
    )
    before = AuditLog.objects.filter(organization_id=organization.pk).count()
    assert before >= 1

    deleted = operator_browser.post(
        f"/admin/accounts/organization/{organization.pk}/delete/", {"post": "yes"}
    )

    assert deleted.status_code == 302 and not Organization.objects.filter(pk=organization.pk).exists()
    assert not User.objects.filter(pk=member.pk).exists()  # the members went with it
    kept = AuditLog.objects.filter(organization_id=organization.pk)
    assert kept.count() == before + 1  # and the deletion itself, under the organization's id
    (row,) = kept.filter(operation_type="delete", model_name="Organization")
    assert row.actor_email == operator.email
    assert rows("update", member.pk)[0].actor_email == owner.email
    assert operator_browser.get("/admin/observability/auditlog/").status_code == 200


def test_audit_rows_cannot_be_changed_or_deleted(operator_browser, owner, member):
    assert (
        client_for(owner).patch(f"/api/users/{member.pk}", {"role": "viewer"}, format="json").status_code
        == 200
    )
    (row,) = rows("update", member.pk)

    row.changes = {"role": "nothing happened"}
    with pytest.raises(AuditLogIsAppendOnly):
        row.save()
    with pytest.raises(AuditLogIsAppendOnly):
        row.delete()
    with pytest.raises(AuditLogIsAppendOnly):
        AuditLog.objects.filter(pk=row.pk).update(changes={})
    with pytest.raises(AuditLogIsAppendOnly):
        AuditLog.objects.filter(pk=row.pk).delete()

    change = f"/admin/observability/auditlog/{row.pk}/change/"
    assert operator_browser.post(change, {"changes": "{}"}).status_code == 403
    assert (
        operator_browser.post(f"/admin/observability/auditlog/{row.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    bulk = {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes"}
    operator_browser.post("/admin/observability/auditlog/", bulk)
    row.refresh_from_db()
    assert row.changes["role"] == "viewer"
