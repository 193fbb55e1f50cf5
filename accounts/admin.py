from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from rest_framework_simplejwt.token_blacklist.admin import BlacklistedTokenAdmin as JWTBlacklistedTokenAdmin
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken

from accounts.models import Organization, User
from accounts.throttling import login_attempt_admit, login_attempt_forgive
from studio.admin import AuditedAdmin
from studio.api.errors import ApiError
from studio.audit import audit_record, client_address


class ThrottledAdminLoginForm(AdminAuthenticationForm):
    """The operators' login, under the same brute-force protection as the API login."""

    def clean(self):
        email, password = self.cleaned_data.get("username"), self.cleaned_data.get("password")
        if not (email and password):
            return super().clean()
        try:
            attempt = login_attempt_admit(email=email, address=client_address(self.request))
        except ApiError as refusal:
            raise ValidationError(refusal.message, code=refusal.code) from None
        try:
            return super().clean()
        finally:
            if self.get_user() is not None:  # the password was right (staff or not)
                login_attempt_forgive(attempt)


admin.site.login_form = ThrottledAdminLoginForm


class MemberInline(admin.TabularInline):
    model = User
    fields = ["email", "name", "role", "status", "created_at"]
    readonly_fields = ["email", "created_at"]
    extra = 0
    show_change_link = True
    can_delete = False


def _set_status(modeladmin, request, queryset, status: str) -> None:
    for organization in queryset.exclude(status=status):
        organization.status = status
        organization.save(update_fields=["status"])
        audit_record(
            actor=request.user,
            organization_id=organization.pk,
            operation="update",
            instance=organization,
            changes={"status": status},
        )
    messages.success(request, f"Set {queryset.count()} organization(s) to {status}.")


@admin.action(description="Suspend selected organizations")
def suspend(modeladmin, request, queryset):
    _set_status(modeladmin, request, queryset, Organization.Status.SUSPENDED)


@admin.action(description="Activate selected organizations")
def activate(modeladmin, request, queryset):
    _set_status(modeladmin, request, queryset, Organization.Status.ACTIVE)


@admin.register(Organization)
class OrganizationAdmin(AuditedAdmin, admin.ModelAdmin):
    list_display = ["name", "slug", "plan_tier", "status", "created_at"]
    list_filter = ["status", "plan_tier"]
    search_fields = ["name", "slug"]
    readonly_fields = ["id", "created_at"]
    inlines = [MemberInline]
    actions = [suspend, activate]


@admin.register(User)
class UserAdmin(AuditedAdmin, DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "name", "organization", "role", "status", "is_staff", "created_at"]
    list_filter = ["role", "status", "is_staff"]
    list_select_related = ["organization"]
    search_fields = ["email", "name", "organization__name"]
    readonly_fields = ["id", "created_at", "last_login"]
    fieldsets = [
        (None, {"fields": ["id", "email", "password"]}),
        ("Profile", {"fields": ["name", "organization", "role", "status", "preferences"]}),
        ("Operator access", {"fields": ["is_staff", "is_superuser", "groups", "user_permissions"]}),
        ("Dates", {"fields": ["last_login", "created_at"]}),
    ]
    add_fieldsets = [
        (None, {"classes": ["wide"], "fields": ["email", "organization", "role", "password1", "password2"]})
    ]
    filter_horizontal = ["groups", "user_permissions"]


# The pages of Django's and simplejwt's own models, audited like ours: a group grants operators
# permissions, and deleting a blacklisted token makes a refresh token that was logged out usable again.
admin.site.unregister([Group, BlacklistedToken])


@admin.register(Group)
class GroupAdmin(AuditedAdmin, DjangoGroupAdmin):
    pass


@admin.register(BlacklistedToken)
class BlacklistedTokenAdmin(AuditedAdmin, JWTBlacklistedTokenAdmin):
    pass
