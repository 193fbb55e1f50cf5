from __future__ import annotations

import itertools

from accounts.models import Organization, User

PASSWORD = "correct-horse-battery-9"
_seq = itertools.count(1)


def make_organization(*, name: str | None = None, **fields) -> Organization:
    n = next(_seq)
    name = name or f"Org {n}"
    return Organization.objects.create(name=name, slug=f"org-{n}-{id(object())}", **fields)


def make_user(
    organization: Organization, *, role: str = "member", email: str | None = None, **fields
) -> User:
    email = email or f"user{next(_seq)}-{role}@example.com"
    return User.objects.create_user(
        email, PASSWORD, organization=organization, role=role, name=email, **fields
    )
