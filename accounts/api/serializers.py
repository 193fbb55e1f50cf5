from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from accounts.models import Organization, User
from studio.api.rendering import RenderedFields


class OrganizationSerializer(RenderedFields, serializers.ModelSerializer):
    class Meta:
        model = Organization
        fields = ["id", "name", "slug", "plan_tier", "status", "created_at"]
        read_only_fields = fields


class UserSerializer(RenderedFields, serializers.ModelSerializer):
    """A member as the organization sees them: `preferences` are the user's own (null to others)."""

    organization_id = serializers.CharField(read_only=True)
    preferences = serializers.SerializerMethodField(help_text="Shown only to the user themself.")
    shows_own_account = False  # the serializers of the caller's own account (login, me) say True

    class Meta:
        model = User
        fields = ["id", "email", "name", "role", "status", "organization_id", "preferences", "created_at"]
        read_only_fields = fields

    def get_preferences(self, user) -> dict | None:
        request = self.context.get("request")
        own = self.shows_own_account or (request is not None and request.user.pk == user.pk)
        return user.preferences if own else None


class OwnAccountSerializer(UserSerializer):
    """The caller's own account, preferences included."""

    shows_own_account = True


class PreferencesField(serializers.JSONField):
    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be a JSON object.")
        return value


class NewAccountSerializer(serializers.Serializer):
    """Email, password (Django's validators) and name of an account about to be created."""

    email = serializers.EmailField()
    password = serializers.CharField(write_only=True, max_length=256, style={"input_type": "password"})
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")

    def validate(self, attrs):
        candidate = User(email=attrs["email"], name=attrs.get("name", ""))
        try:
            password_validation.validate_password(attrs["password"], candidate)
        except DjangoValidationError as exc:
            raise serializers.ValidationError({"password": exc.messages}) from None
        return attrs


class RegisterSerializer(NewAccountSerializer):
    org_name = serializers.CharField(max_length=200)


class MemberCreateSerializer(NewAccountSerializer):
    role = serializers.ChoiceField(choices=User.Role.choices, default=User.Role.MEMBER)


class MemberUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    role = serializers.ChoiceField(choices=User.Role.choices, required=False)
    status = serializers.ChoiceField(choices=User.Status.choices, required=False)
    preferences = PreferencesField(required=False)


class ProfileUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    preferences = PreferencesField(required=False)


class LoginSerializer(serializers.Serializer):
    email = serializers.EmailField()
    password = serializers.CharField(write_only=True, max_length=256)


class RefreshSerializer(serializers.Serializer):
    refresh = serializers.CharField()


class TokenPairSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()


class SessionSerializer(TokenPairSerializer):
    user = OwnAccountSerializer()


class MeSerializer(OwnAccountSerializer):
    organization = OrganizationSerializer(read_only=True)

    class Meta(OwnAccountSerializer.Meta):
        fields = [*UserSerializer.Meta.fields, "organization"]


class RegistrationSerializer(SessionSerializer):
    organization = OrganizationSerializer()
