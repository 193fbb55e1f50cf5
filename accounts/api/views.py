from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import services
from accounts.api.serializers import (
    LoginSerializer,
    MemberCreateSerializer,
    MemberUpdateSerializer,
    MeSerializer,
    ProfileUpdateSerializer,
    RefreshSerializer,
    RegisterSerializer,
    RegistrationSerializer,
    SessionSerializer,
    TokenPairSerializer,
    UserSerializer,
)
from accounts.models import User
from studio.api.parsing import validated
from studio.api.viewsets import OrgScopedViewSet
from studio.audit import client_address


class PublicView(APIView):
    """Endpoints that take credentials in the body; their failures are still 401s."""

    permission_classes = [AllowAny]
    authentication_classes = []

    def get_authenticate_header(self, request):
        return 'Bearer realm="api"'


class RegisterView(PublicView):
    throttle_scope = "register"

    @extend_schema(request=RegisterSerializer, responses={201: RegistrationSerializer}, tags=["auth"])
    def post(self, request):
        """Creates an organization and its owner, and logs the owner in."""
        owner = services.organization_register(**validated(RegisterSerializer, request.data))
        body = {"user": owner, "organization": owner.organization, **services.tokens_for(owner)}
        return Response(RegistrationSerializer(body).data, status=status.HTTP_201_CREATED)


class LoginView(PublicView):
    throttle_scope = "login"

    @extend_schema(request=LoginSerializer, responses={200: SessionSerializer}, tags=["auth"])
    def post(self, request):
        data = validated(LoginSerializer, request.data)
        user = services.auth_login(client_address=client_address(request), **data)
        return Response(SessionSerializer({"user": user, **services.tokens_for(user)}).data)


class RefreshView(PublicView):
    @extend_schema(request=RefreshSerializer, responses={200: TokenPairSerializer}, tags=["auth"])
    def post(self, request):
        """Exchanges a refresh token for a new pair; the old refresh token stops working."""
        return Response(services.token_refresh(**validated(RefreshSerializer, request.data)))


class LogoutView(APIView):
    @extend_schema(request=RefreshSerializer, responses={204: None}, tags=["auth"])
    def post(self, request):
        services.auth_logout(user=request.user, **validated(RefreshSerializer, request.data))
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    @extend_schema(responses=MeSerializer, tags=["auth"])
    def get(self, request):
        return Response(MeSerializer(request.user).data)

    @extend_schema(request=ProfileUpdateSerializer, responses=MeSerializer, tags=["auth"])
    def patch(self, request):
        user = services.profile_update(user=request.user, **validated(ProfileUpdateSerializer, request.data))
        return Response(MeSerializer(user).data)


class UserViewSet(
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    OrgScopedViewSet,
):
    """Members of the caller's organization. Everyone reads; admins manage."""

    queryset = User.objects.all()
    serializer_class = UserSerializer
    write_role = "admin"
    http_method_names = ["get", "post", "patch", "delete", "head", "options"]

    @extend_schema(request=MemberCreateSerializer, responses={201: UserSerializer})
    def create(self, request):
        user = services.user_create(actor=request.user, **validated(MemberCreateSerializer, request.data))
        return Response(UserSerializer(user).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=MemberUpdateSerializer, responses=UserSerializer)
    def partial_update(self, request, pk=None):
        data = validated(MemberUpdateSerializer, request.data)
        user = services.user_update(actor=request.user, user=self.get_object(), **data)
        return Response(UserSerializer(user).data)

    @extend_schema(responses={204: None})
    def destroy(self, request, pk=None):
        services.user_delete(actor=request.user, user=self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)
