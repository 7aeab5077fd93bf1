"""Which scope each public RPC needs: the one table, enforced by the edge interceptor for every service.

Signed-in users (and service principals) hold every scope; an API key holds only the scopes granted
when it was created (names in :data:`viarte.scopes.SCOPES`). A key calling an RPC outside them is
refused with PERMISSION_DENIED, ErrorInfo reason ``MISSING_SCOPE`` and ``metadata["scope"]``, before
the handler runs. ``USER_SESSION`` RPCs (credential and account management) refuse API keys
whatever their scopes. Internal services need no entry: only service principals may call them.

A public RPC missing from the table is refused to every API key (fail closed), and
``tests/e2e/test_scopes.py`` fails for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from services.kit.auth import AUTH_DOMAIN, Principal, PrincipalKind
from services.kit.errors import ServiceError
from viarte.scopes import SCOPES

__all__ = ["METHOD_SCOPES", "NO_SCOPE", "SCOPES", "USER_SESSION", "check_scope"]

# Any caller that authenticated (or an anonymous one, for methods a Service declares anonymous).
NO_SCOPE = ""
# Signed-in users only: API keys can never call these (they cannot mint or manage credentials).
USER_SESSION = "<user session>"

_ASSETS_R, _ASSETS_W = "assets:read", "assets:write"
_JOBS_R, _JOBS_W = "jobs:read", "jobs:write"
_PROJECTS_R, _PROJECTS_W = "projects:read", "projects:write"
_ASSISTANT = "assistant"


def _service(name: str, **methods: str) -> dict[str, str]:
    return {f"/{name}/{method}": scope for method, scope in methods.items()}


def _jobs(name: str, kind: str) -> dict[str, str]:
    return _service(
        name,
        **{f"Create{kind}Job": _JOBS_W, f"Cancel{kind}Job": _JOBS_W},
        **{f"Get{kind}Job": _JOBS_R, f"List{kind}Jobs": _JOBS_R, f"Watch{kind}Job": _JOBS_R},
    )


METHOD_SCOPES: Mapping[str, str] = MappingProxyType(
    {
        **_service(
            "viarte.auth.v1.AuthService",
            Register=NO_SCOPE, Login=NO_SCOPE, Refresh=NO_SCOPE, ListPublicKeys=NO_SCOPE,
            GetMe=NO_SCOPE,  # a key may always learn whose it is and what it holds
            Logout=USER_SESSION, CreateApiKey=USER_SESSION, ListApiKeys=USER_SESSION,
            RevokeApiKey=USER_SESSION, ListUsers=USER_SESSION, UpdateUser=USER_SESSION,
        ),
        **_service(
            "viarte.storage.v1.StorageService",
            GetAsset=_ASSETS_R, ListAssets=_ASSETS_R, DownloadAsset=_ASSETS_R, GetDownloadUrl=_ASSETS_R,
            CreateUpload=_ASSETS_W, CompleteUpload=_ASSETS_W, UploadAsset=_ASSETS_W, DeleteAsset=_ASSETS_W,
        ),
        # The model catalogue is public knowledge of the deployment, needed to use any job scope.
        **_service("viarte.inference.v1.GenerationService", ListModels=NO_SCOPE),
        **_jobs("viarte.inference.v1.GenerationService", "Generation"),
        **_jobs("viarte.inference.v1.FaceSwapService", "FaceSwap"),
        **_service(
            "viarte.inference.v1.AssistantService",
            EnhancePrompt=_ASSISTANT, Chat=_ASSISTANT, GetAssistantStatus=_ASSISTANT,
        ),
        **_jobs("viarte.render.v1.RenderService", "Render"),
        # A preview frame spends render time like a job does.
        **_service("viarte.render.v1.RenderService", RenderFrame=_JOBS_W),
        **_jobs("viarte.render.v1.UpscaleService", "Upscale"),
        **_service(
            "viarte.render.v1.ProjectService",
            GetProject=_PROJECTS_R, ListProjects=_PROJECTS_R,
            CreateProject=_PROJECTS_W, UpdateProject=_PROJECTS_W, DeleteProject=_PROJECTS_W,
        ),
    }
)  # fmt: skip

# A typo in the table would lock every key out of an RPC: refuse to start instead.
if not set(METHOD_SCOPES.values()) <= {*SCOPES, NO_SCOPE, USER_SESSION}:
    raise RuntimeError(f"unknown scope in METHOD_SCOPES: {set(METHOD_SCOPES.values()) - {*SCOPES, NO_SCOPE, USER_SESSION}}")


def check_scope(principal: Principal, method: str) -> None:
    """Raise PERMISSION_DENIED unless `principal` may call `method` (a full "/pkg.Service/Method")."""
    if principal.kind is not PrincipalKind.API_KEY:
        return
    needed = METHOD_SCOPES.get(method)
    if needed is None:
        raise ServiceError.permission_denied(
            "PERMISSION_DENIED", "no API-key scope grants this RPC", domain=AUTH_DOMAIN
        )
    if needed == USER_SESSION:
        raise ServiceError.permission_denied(
            "PERMISSION_DENIED", "API keys cannot call this RPC: sign in as the user", domain=AUTH_DOMAIN
        )
    if needed and not principal.has_scope(needed):
        raise ServiceError.permission_denied(
            "MISSING_SCOPE", f"the API key lacks scope {needed!r}", metadata={"scope": needed}, domain=AUTH_DOMAIN
        )
