"""Login brute-force protection under attack: parallel guesses, many clients behind one proxy,
spoofed X-Forwarded-For, the operators' admin login, and the cache down."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from observability.models import AuditLog
from studio.api import ratelimit
from tests.accounts.factories import PASSWORD, make_user
from tests.studio.test_redis_down import redis_down  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)  # the parallel test's threads need committed rows

WRONG = "wrong-password-123"
LIMIT = 3
WINDOW_S = 15 * 60


@pytest.fixture(autouse=True)
def _small_limit(settings):
    settings.LOGIN_FAILURE_LIMIT = LIMIT
    settings.LOGIN_FAILURE_WINDOW_S = WINDOW_S


def login(client, email, password=PASSWORD, **extra):
    return client.post("/api/auth/login", {"email": email, "password": password}, format="json", **extra)


def fail_until_locked(client, email, **extra):
    for _ in range(LIMIT):
        assert login(client, email, WRONG, **extra).status_code == 401
    locked = login(client, email, **extra)  # even the right password waits now
    assert locked.status_code == 429 and locked.json()["error"]["code"] == "rate_limited"
    return locked


def login_audit_row(user):
    return AuditLog.objects.filter(operation_type="login", user_id=user.pk).latest("created_at")


@pytest.mark.argon2  # a real hash makes each password check slow, so the attempts overlap
def test_parallel_attempts_get_no_more_password_checks_than_the_limit(member):
    attempts = 16
    start = threading.Barrier(attempts)

    def attempt(_):
        start.wait()
        try:
            return login(APIClient(), member.email, WRONG).status_code
        finally:
            connection.close()

    with ThreadPoolExecutor(attempts) as pool:
        statuses = list(pool.map(attempt, range(attempts)))
    assert statuses.count(401) == LIMIT  # a 401 is a password that was checked: a guess
    assert statuses.count(429) == attempts - LIMIT


def test_one_clients_lockout_locks_nobody_else_out(api_client, member, other_org_owner):
    fail_until_locked(api_client, member.email, REMOTE_ADDR="198.51.100.7")
    assert login(api_client, member.email, REMOTE_ADDR="198.51.100.8").status_code == 200
    # nor the locked-out address out of other accounts (a shared office address, say)
    assert login(api_client, other_org_owner.email, REMOTE_ADDR="198.51.100.7").status_code == 200


def test_behind_a_trusted_proxy_clients_are_told_apart_and_audited_by_x_forwarded_for(
    api_client, member, settings
):
    settings.TRUSTED_PROXIES = ["127.0.0.1"]  # the test client's REMOTE_ADDR is the proxy
    fail_until_locked(api_client, member.email, HTTP_X_FORWARDED_FOR="203.0.113.5")
    assert login(api_client, member.email, HTTP_X_FORWARDED_FOR="203.0.113.6").status_code == 200
    assert login_audit_row(member).ip_address == "203.0.113.6"


def test_x_forwarded_for_is_walked_back_only_through_trusted_proxies(api_client, member, settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]
    chain = "198.51.100.1, 203.0.113.7, 10.0.0.3"  # the client wrote the first hop itself
    response = login(api_client, member.email, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=chain)
    assert response.status_code == 200
    assert login_audit_row(member).ip_address == "203.0.113.7"


def test_x_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(
    api_client, member, other_org_owner, settings
):
    settings.TRUSTED_PROXIES = ["10.0.0.1"]
    for n in range(LIMIT):  # a new spoofed address every time does not earn new guesses
        response = login(api_client, member.email, WRONG, HTTP_X_FORWARDED_FOR=f"203.0.113.{n}")
        assert response.status_code == 401
    assert login(api_client, member.email, HTTP_X_FORWARDED_FOR="203.0.113.99").status_code == 429
    assert login(api_client, other_org_owner.email, HTTP_X_FORWARDED_FOR="203.0.113.99").status_code == 200
    assert login_audit_row(other_org_owner).ip_address == "127.0.0.1"


def test_each_lockout_of_the_same_pair_lasts_twice_as_long(api_client, member, monkeypatch):
    now = ratelimit.clock()
    assert int(fail_until_locked(api_client, member.email)["Retry-After"]) == WINDOW_S
    monkeypatch.setattr(ratelimit, "clock", lambda: now + WINDOW_S)  # the first lockout is over
    assert int(fail_until_locked(api_client, member.email)["Retry-After"]) == 2 * WINDOW_S
    monkeypatch.setattr(ratelimit, "clock", lambda: now + 2 * WINDOW_S)  # half-way through it
    assert int(login(api_client, member.email)["Retry-After"]) == WINDOW_S
    monkeypatch.setattr(ratelimit, "clock", lambda: now + 3 * WINDOW_S)
    assert login(api_client, member.email).status_code == 200


def test_a_correct_password_does_not_count_towards_a_lockout(api_client, member):
    for _ in range(LIMIT * 2):
        assert login(api_client, member.email).status_code == 200
    fail_until_locked(api_client, member.email)


def test_the_admin_login_is_throttled_too(organization):
    operator = make_user(organization, role="owner", is_staff=True)
    browser = Client()

    def admin_login(password):
        return browser.post("/admin/login/", {"username": operator.email, "password": password})

    for _ in range(LIMIT):
        assert admin_login(WRONG).status_code == 200  # the form again, with an error
    refused = admin_login(PASSWORD)
    assert refused.status_code == 200 and "Too many login attempts" in refused.content.decode()
    assert "_auth_user_id" not in browser.session
    # the API login of the same account from the same address shares the count
    assert login(APIClient(), operator.email).status_code == 429


def test_with_the_cache_down_logins_are_refused_not_unthrottled(redis_down, api_client, member):  # noqa: F811
    for password in (WRONG, PASSWORD):
        response = login(api_client, member.email, password)
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "rate_limiter_unavailable"
    browser = Client()
    refused = browser.post("/admin/login/", {"username": member.email, "password": PASSWORD})
    assert "Logging in is unavailable" in refused.content.decode()
    assert "_auth_user_id" not in browser.session
