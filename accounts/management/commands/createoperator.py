"""`manage.py createoperator --email … --org …`: an operator who can use both the admin and the API."""

import getpass
import os
import sys

from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from accounts.services import operator_create
from studio.api.errors import ApiError

PASSWORD_ENV = "STUDIO_OPERATOR_PASSWORD"


class Command(BaseCommand):
    help = (
        "Creates an operator: staff and superuser (the admin at /admin/) and owner of an organization "
        "(the API; `createsuperuser` makes accounts without one, which the API refuses). --org names "
        "an existing organization (slug or name) or the one to create. The password is read from "
        f"{PASSWORD_ENV}, or asked for."
    )

    def add_arguments(self, parser):
        parser.add_argument("--email", required=True)
        parser.add_argument(
            "--org", required=True, help="Slug or name of the organization; created when none has it."
        )
        parser.add_argument("--name", default="", help="The operator's display name.")

    def handle(self, *args, email: str, org: str, name: str, **options):
        password = self._password()
        try:
            password_validation.validate_password(password, User(email=email, name=name))
        except ValidationError as error:
            raise CommandError("The password is refused: " + " ".join(error.messages)) from None
        try:
            operator = operator_create(email=email, password=password, org=org, name=name)
        except ApiError as error:
            raise CommandError(error.message) from None
        organization = operator.organization
        self.stdout.write(
            self.style.SUCCESS(
                f"Operator {operator.email} created, owner of {organization.name} ({organization.slug})."
            )
        )

    def _password(self) -> str:
        if os.environ.get(PASSWORD_ENV):
            return os.environ[PASSWORD_ENV]
        if not sys.stdin.isatty():
            raise CommandError(f"Set {PASSWORD_ENV}, or run the command in a terminal to be asked.")
        password = getpass.getpass("Password: ")
        if password != getpass.getpass("Password (again): "):
            raise CommandError("The passwords differ.")
        return password
