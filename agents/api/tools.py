"""MCP servers as tool sources: `/api/tools/mcp-servers` (admins write, everyone in the organization
reads) and `/api/tools/mcp-servers/{id}/tools`, the server's tools as it lists them now.

Auth headers are write-only: a response shows each header's name and the last four characters of
its value (`headers_hint`), nothing else."""

from __future__ import annotations

import re

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers, status
from rest_framework.decorators import action
from rest_framework.response import Response

from agents import services
from agents.config_schema import MCP_TOOL_NAME
from agents.mcp_tools import mcp_server_tool_list
from agents.models import McpServer
from agents.runtime.tool_sources import McpToolError
from agents.selectors import mcp_server_list
from providers.aio import run_sync
from studio.api.errors import ApiError
from studio.api.parsing import validated
from studio.api.rendering import RenderedFields
from studio.api.secrets import SecretField, SecretHintField
from studio.api.viewsets import OrgScopedViewSet
from studio.ids import id_pattern

MAX_HEADERS = 20
MAX_ALLOWED_TOOLS = 200
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}")  # an HTTP token
# Set by the client and the transport: a stored header may not replace them.
_RESERVED_HEADERS = {"host", "content-length", "content-type", "accept", "accept-encoding", "connection"}


class HeaderHintSerializer(RenderedFields, serializers.Serializer):
    name = serializers.CharField()
    hint = SecretHintField()


class McpServerSerializer(RenderedFields, serializers.ModelSerializer):
    """An MCP server as every response shows it: its headers only as hints."""

    organization_id = serializers.CharField(read_only=True)
    created_by_id = serializers.CharField(read_only=True, allow_null=True)
    headers_hint = HeaderHintSerializer(many=True, read_only=True)
    allowed_tools = serializers.ListField(
        child=serializers.CharField(),
        allow_null=True,
        read_only=True,
        help_text="The tools agents may use; null: every tool the server lists.",
    )

    class Meta:
        model = McpServer
        fields = [
            "id",
            "organization_id",
            "name",
            "url",
            "headers_hint",
            "allowed_tools",
            "created_by_id",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class HeadersField(serializers.DictField):
    """`{name: value}`: HTTP header names, values without line breaks; write-only."""

    def __init__(self, **kwargs):
        super().__init__(child=SecretField(max_length=4096, trim_whitespace=False), **kwargs)

    def to_internal_value(self, data):
        headers = super().to_internal_value(data)
        if len(headers) > MAX_HEADERS:
            raise serializers.ValidationError(f"At most {MAX_HEADERS} headers.")
        for name, value in headers.items():
            if not _HEADER_NAME.fullmatch(name):
                raise serializers.ValidationError(f"{name!r} is not an HTTP header name.")
            if name.lower() in _RESERVED_HEADERS or name.lower().startswith("mcp-"):
                raise serializers.ValidationError(f"{name!r} is set by the MCP client itself.")
            if any(character in value for character in "\r\n\0"):
                raise serializers.ValidationError(f"The value of {name!r} may not contain line breaks.")
        return headers


class AllowedToolsField(serializers.ListField):
    def __init__(self, **kwargs):
        child = serializers.RegexField(MCP_TOOL_NAME.pattern, max_length=128)
        super().__init__(child=child, allow_null=True, max_length=MAX_ALLOWED_TOOLS, **kwargs)

    def to_internal_value(self, data):
        tools = super().to_internal_value(data)
        if len(set(tools)) != len(tools):
            raise serializers.ValidationError("A tool is listed twice.")
        return tools


class McpServerUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120, required=False)
    url = serializers.CharField(
        max_length=500, required=False, help_text="The server's streamable HTTP endpoint (https)."
    )
    headers = HeadersField(
        required=False,
        write_only=True,
        help_text='Auth headers sent with every request, e.g. {"Authorization": "Bearer ..."}; '
        "stored encrypted, never shown again. Replaces the stored ones ({} removes them).",
    )
    allowed_tools = AllowedToolsField(
        required=False, help_text="The tools agents may use; null or absent: every tool the server lists."
    )


class McpServerCreateSerializer(McpServerUpdateSerializer):
    name = serializers.CharField(max_length=120)
    url = serializers.CharField(max_length=500, help_text="The server's streamable HTTP endpoint (https).")


class McpToolSerializer(serializers.Serializer):
    name = serializers.CharField()
    title = serializers.CharField(allow_null=True)
    description = serializers.CharField(allow_blank=True)
    input_schema = serializers.JSONField(help_text="JSON Schema of the tool's arguments.")
    allowed = serializers.BooleanField(help_text="Whether the server's allow-list lets agents use it.")


class McpToolListSerializer(serializers.Serializer):
    server_id = serializers.CharField()
    tools = McpToolSerializer(many=True)


@extend_schema_view(
    list=extend_schema(summary="The organization's MCP servers (tool sources of react agents)"),
    retrieve=extend_schema(summary="One MCP server"),
)
class McpServerViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, OrgScopedViewSet):
    """MCP servers whose tools the organization's react agents may call. Everyone reads; admins
    create, change and delete them."""

    queryset = McpServer.objects.all()
    serializer_class = McpServerSerializer
    lookup_value_regex = id_pattern("mcps")
    write_role = "admin"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    def scoped_queryset(self, *, organization, user):
        return mcp_server_list(user=user)

    @property
    def throttle_scope(self) -> str | None:
        return "provider_validate" if self.action == "tools" else None  # it calls the server

    @extend_schema(
        summary="Add an MCP server; its URL follows the provider URL rules (https, public host)",
        request=McpServerCreateSerializer,
        responses={201: McpServerSerializer},
    )
    def create(self, request):
        data = validated(McpServerCreateSerializer, request.data)
        server = services.mcp_server_create(actor=request.user, **data)
        return Response(McpServerSerializer(server).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        summary="Change an MCP server; a URL on another origin needs the headers again",
        request=McpServerUpdateSerializer,
        responses=McpServerSerializer,
    )
    def partial_update(self, request, pk=None):
        data = validated(McpServerUpdateSerializer, request.data)
        server = services.mcp_server_update(actor=request.user, server=self.get_object(), **data)
        return Response(McpServerSerializer(server).data)

    @extend_schema(summary="Delete an MCP server no agent uses", responses={204: None})
    def destroy(self, request, pk=None):
        services.mcp_server_delete(actor=request.user, server=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)

    @extend_schema(
        summary="The tools the server lists now, through the MCP client (502/504 when unreachable)",
        responses=McpToolListSerializer,
    )
    @action(detail=True, methods=["get"])
    def tools(self, request, pk=None):
        server = self.get_object()
        try:
            tools = run_sync(mcp_server_tool_list, server)
        except McpToolError as error:
            message = f"The MCP server could not be reached: {error.message}."
            raise ApiError(error.status, error.code, message) from None
        rows = [
            {
                "name": tool.name,
                "title": tool.title,
                "description": tool.description or "",
                "input_schema": tool.inputSchema,
                "allowed": server.allows(tool.name),
            }
            for tool in tools
        ]
        return Response(McpToolListSerializer({"server_id": server.pk, "tools": rows}).data)
