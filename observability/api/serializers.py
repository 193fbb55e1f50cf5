from rest_framework import serializers

from observability.models import AuditLog


class AuditLogSerializer(serializers.ModelSerializer):
    organization_id = serializers.CharField(read_only=True)
    user_id = serializers.CharField(read_only=True, allow_null=True)
    user_email = serializers.EmailField(source="user.email", read_only=True, default=None)

    class Meta:
        model = AuditLog
        fields = [
            "id",
            "organization_id",
            "user_id",
            "user_email",
            "model_name",
            "operation_type",
            "record_id",
            "changes",
            "ip_address",
            "user_agent",
            "created_at",
        ]
        read_only_fields = fields
