"""JWT authentication that re-checks the user and organization on every request."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from rest_framework.exceptions import AuthenticationFailed, PermissionDenied
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError
from rest_framework_simplejwt.tokens import AccessToken, Token

from accounts.auth_cache import cached_user
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
    user = cached_user(user_id, _user_with_organization)
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


def _user_with_organization(user_id: str) -> User | None:
    """One query; the password hash is left out (nothing authenticated by a token reads it, and
    the entry may be cached)."""
    return User.objects.select_related("organization").defer("password").filter(pk=user_id).first()


class VerifiedTokens:
    """Access tokens whose signature and claims were verified, until they expire: a token's
    validity depends only on its text, the signing key and the time, so a token presented again
    (every request of a session) is not verified again. Bounded, least recently used first out."""

    def __init__(self, size: int = 4096):
        self._tokens: OrderedDict[bytes, Token] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()  # requests run on many threads

    def verified(self, raw_token: bytes, verify: Callable[[bytes], Token]) -> Token:
        with self._lock:
            token = self._tokens.get(raw_token)
            if token is not None and token["exp"] > time.time():
                self._tokens.move_to_end(raw_token)
                return token
            self._tokens.pop(raw_token, None)
        token = verify(raw_token)  # raises for an invalid or expired token
        with self._lock:
            self._tokens[raw_token] = token
            if len(self._tokens) > self._size:
                self._tokens.popitem(last=False)
        return token


def access_token_session(raw_token: str) -> tuple[User, int]:
    """Validates an access token (signature, expiry, type); returns its active user and the
    token's expiry (a Unix timestamp), for connections that outlive a single request."""
    try:
        token = AccessToken(raw_token)
    except TokenError as exc:
        raise InvalidToken(str(exc)) from None
    return active_user(token["user_id"]), token["exp"]


class StudioJWTAuthentication(JWTAuthentication):
    tokens = VerifiedTokens()

    def get_validated_token(self, raw_token: bytes) -> Token:
        return self.tokens.verified(raw_token, super().get_validated_token)

    def get_user(self, validated_token) -> User:
        return active_user(validated_token["user_id"])
