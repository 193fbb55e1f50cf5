"""JWT authentication that re-checks the user and organization on every request."""

from __future__ import annotations

from rest_framework.exceptions import AuthenticationFailed, PermissionDenied
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.tokens import AccessToken

from accounts.models import User

NO_ORGANIZATION = (
    "This account belongs to no organization, so it cannot use the API (it can still sign in to "
    "/admin/). Give it an organization in the admin, or create operators with "
    "`manage.py createoperator --email … --org …`."
)


class OrganizationSuspended(PermissionDenied):
    default_detail = "Your organization is suspended."
    default_code = "organization_suspended"


def active_user(user_id: str) -> User:
    """The user behind a token, refused at once when removed, deactivated or suspended. An account
    without an organization (`createsuperuser` makes one) is refused with one clear error, at
    login as on every request, rather than let in to be denied everything for reasons that
    contradict each other."""
    user = User.objects.select_related("organization").filter(pk=user_id).first()
    if user is None or not user.is_active:
        raise AuthenticationFailed("This account is not active.", code="account_inactive")
    if user.organization is None:
        # Imported here: DRF imports this module while loading its settings, which the errors
        # module needs first.
        from studio.api.errors import ApiError

        raise ApiError(403, "no_organization", NO_ORGANIZATION)
    if user.organization.is_suspended:
        raise OrganizationSuspended()
    return user


def access_token_session(raw_token: str) -> tuple[User, int]:
    """Validates an access token (signature, expiry, type); returns its active user and the
    token's expiry (a Unix timestamp), for connections that outlive a single request."""
    try:
        token = AccessToken(raw_token)
    except TokenError as exc:
        raise InvalidToken(str(exc)) from None
    return active_user(token["user_id"]), token["exp"]


class StudioJWTAuthentication(JWTAuthentication):
    def get_user(self, validated_token) -> User:
        return active_user(validated_token["user_id"])
