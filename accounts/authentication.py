"""JWT authentication that re-checks the user and organization on every request."""

from __future__ import annotations

from rest_framework.exceptions import AuthenticationFailed, PermissionDenied
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import User


class OrganizationSuspended(PermissionDenied):
    default_detail = "Your organization is suspended."
    default_code = "organization_suspended"


def active_user(user_id: str) -> User:
    """The user behind a token, refused at once when removed, deactivated or suspended."""
    user = User.objects.select_related("organization").filter(pk=user_id).first()
    if user is None or not user.is_active:
        raise AuthenticationFailed("This account is not active.", code="account_inactive")
    if user.organization is not None and user.organization.is_suspended:
        raise OrganizationSuspended()
    return user


def user_for_access_token(raw_token: str) -> User:
    """Validates an access token (signature, expiry, type) and returns its active user."""
    try:
        token = AccessToken(raw_token)
    except TokenError as exc:
        raise InvalidToken(str(exc)) from None
    return active_user(token["user_id"])


class StudioJWTAuthentication(JWTAuthentication):
    def get_user(self, validated_token) -> User:
        return active_user(validated_token["user_id"])
