"""Writes of the accounts app: registration, sessions (tokens), members. Each one audits itself."""

from __future__ import annotations

from django.contrib.auth import authenticate
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils.text import slugify
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.authentication import active_user
from accounts.models import Organization, User
from accounts.throttling import login_attempt_admit, login_attempt_forgive
from studio.api.errors import ApiError
from studio.api.permissions import has_role
from studio.audit import audit_record
from studio.changes import apply_changes
from studio.ids import new_id

INVALID_CREDENTIALS = "Invalid email or password."
EMAIL_TAKEN = "An account with this email already exists."


def _unique_slug(name: str) -> str:
    base = slugify(name)[:60] or "org"
    if not Organization.objects.filter(slug=base).exists():
        return base
    return f"{base}-{new_id('x')[-8:]}"


def _audit_organization_created(*, actor: User, organization: Organization) -> None:
    audit_record(
        actor=actor,
        organization_id=organization.pk,
        operation="create",
        instance=organization,
        changes={"name": organization.name, "slug": organization.slug},
    )


def tokens_for(user: User) -> dict[str, str]:
    refresh = RefreshToken.for_user(user)
    return {"access": str(refresh.access_token), "refresh": str(refresh)}


@transaction.atomic
def organization_register(*, org_name: str, email: str, password: str, name: str = "") -> User:
    """Creates an organization and its owner together."""
    email = email.strip().lower()
    if User.objects.filter(email=email).exists():
        raise ApiError(
            409,
            "email_taken",
            EMAIL_TAKEN,
            fields={"email": [EMAIL_TAKEN]},
        )
    organization = Organization.objects.create(name=org_name.strip(), slug=_unique_slug(org_name))
    try:
        with transaction.atomic():
            owner = User.objects.create_user(
                email, password, name=name.strip(), role=User.Role.OWNER, organization=organization
            )
    except IntegrityError:  # a concurrent registration took the email
        raise ApiError(409, "email_taken", EMAIL_TAKEN) from None
    _audit_organization_created(actor=owner, organization=organization)
    audit_record(
        actor=owner,
        organization_id=organization.pk,
        operation="create",
        instance=owner,
        changes={"email": owner.email, "role": owner.role},
    )
    return owner


def auth_login(*, email: str, password: str, client_address: str | None) -> User:
    """Checks credentials under brute-force protection (`accounts.throttling`); unknown email and
    wrong password look alike."""
    email = email.strip().lower()
    attempt = login_attempt_admit(email=email, address=client_address)
    user = authenticate(username=email, password=password)
    if user is None:
        raise AuthenticationFailed(INVALID_CREDENTIALS, code="invalid_credentials")
    login_attempt_forgive(attempt)
    user = active_user(user.pk)
    audit_record(actor=user, organization_id=user.organization_id, operation="login", instance=user)
    return user


@transaction.atomic
def operator_create(*, email: str, password: str, org: str, name: str = "") -> User:
    """An operator: staff and superuser (the admin) and owner of the organization whose slug or
    name is `org` (the API), which is created when there is none."""
    email, org = email.strip().lower(), org.strip()
    if User.objects.filter(email=email).exists():
        raise ApiError(409, "email_taken", EMAIL_TAKEN)
    named = list(Organization.objects.filter(Q(slug=org) | Q(name=org))[:2])
    if len(named) > 1:
        raise ApiError(409, "ambiguous_organization", f"Several organizations are named {org!r}: use a slug.")
    organization = named[0] if named else Organization.objects.create(name=org, slug=_unique_slug(org))
    operator = User.objects.create_user(
        email,
        password,
        name=name.strip(),
        role=User.Role.OWNER,
        organization=organization,
        is_staff=True,
        is_superuser=True,
    )
    if not named:
        _audit_organization_created(actor=operator, organization=organization)
    audit_record(
        actor=operator,
        organization_id=organization.pk,
        operation="create",
        instance=operator,
        changes={"email": operator.email, "role": operator.role, "is_staff": True, "is_superuser": True},
    )
    return operator


def token_refresh(*, refresh: str) -> dict[str, str]:
    """Rotates a refresh token: the presented one is blacklisted, reuse is refused."""
    try:
        token = RefreshToken(refresh)
    except TokenError as exc:
        raise AuthenticationFailed(str(exc), code="token_not_valid") from None
    user = active_user(token["user_id"])
    with transaction.atomic():
        outstanding = (
            OutstandingToken.objects.select_for_update(of=("self",)).filter(jti=token["jti"]).first()
        )
        if outstanding is None or BlacklistedToken.objects.filter(token=outstanding).exists():
            raise AuthenticationFailed("Token is blacklisted", code="token_not_valid")
        BlacklistedToken.objects.create(token=outstanding)
    return tokens_for(user)


def auth_logout(*, user: User, refresh: str) -> None:
    """Blacklists the caller's refresh token so it can never be used again."""
    try:
        token = RefreshToken(refresh)
    except TokenError as exc:
        raise AuthenticationFailed(str(exc), code="token_not_valid") from None
    if token["user_id"] != user.pk:
        raise ApiError(400, "invalid_token", "This refresh token belongs to another user.")
    with transaction.atomic():  # a logout that could not be audited did not happen
        token.blacklist()
        audit_record(actor=user, organization_id=user.organization_id, operation="logout", instance=user)


def _require_manage(actor: User, target_role: str, target: User | None = None) -> None:
    """Admins manage members; only owners grant or touch the owner role."""
    if not has_role(actor, "admin"):
        raise ApiError(403, "permission_denied", "Your role does not allow this.")
    touches_owner = target_role == User.Role.OWNER or (target is not None and target.role == User.Role.OWNER)
    if touches_owner and actor.role != User.Role.OWNER:
        raise ApiError(403, "permission_denied", "Only an owner can manage owners.")


def _lock_owners(organization_id: str) -> list[str]:
    return list(
        User.objects.select_for_update()
        .filter(organization_id=organization_id, role=User.Role.OWNER, status=User.Status.ACTIVE)
        .values_list("pk", flat=True)
    )


def _guard_last_owner(user: User) -> None:
    owners = _lock_owners(user.organization_id)
    if owners == [user.pk]:
        raise ApiError(409, "last_owner", "The organization must keep at least one active owner.")


@transaction.atomic
def user_create(
    *, actor: User, email: str, password: str, name: str = "", role: str = User.Role.MEMBER
) -> User:
    _require_manage(actor, role)
    email = email.strip().lower()
    if User.objects.filter(email=email).exists():
        raise ApiError(409, "email_taken", EMAIL_TAKEN)
    user = User.objects.create_user(
        email, password, name=name.strip(), role=role, organization_id=actor.organization_id
    )
    audit_record(
        actor=actor,
        organization_id=actor.organization_id,
        operation="create",
        instance=user,
        changes={"email": user.email, "role": user.role, "name": user.name},
    )
    return user


@transaction.atomic
def user_update(*, actor: User, user: User, **fields) -> User:
    """Changes name, role, status or preferences; never leaves the organization without an owner."""
    _require_manage(actor, fields.get("role", user.role), user)
    loses_owner = user.role == User.Role.OWNER and (
        fields.get("role", user.role) != User.Role.OWNER
        or fields.get("status", user.status) != User.Status.ACTIVE
    )
    if loses_owner:
        _guard_last_owner(user)
    changes = apply_changes(user, fields)
    if changes:
        audit_record(
            actor=actor,
            organization_id=user.organization_id,
            operation="update",
            instance=user,
            changes=changes,
        )
    return user


@transaction.atomic
def user_delete(*, actor: User, user: User) -> None:
    _require_manage(actor, user.role, user)
    if user.role == User.Role.OWNER:
        _guard_last_owner(user)
    audit_record(
        actor=actor,
        organization_id=actor.organization_id,
        operation="delete",
        instance=user,
        changes={"email": user.email},
    )
    user.delete()


@transaction.atomic
def profile_update(*, user: User, **fields) -> User:
    """A user's own name and preferences."""
    changes = apply_changes(user, fields)
    if changes:
        audit_record(
            actor=user,
            organization_id=user.organization_id,
            operation="update",
            instance=user,
            changes=changes,
        )
    return user
