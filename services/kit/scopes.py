"""Which scopes each public RPC needs: the one table, enforced by the edge interceptor for every service.

Signed-in users (and service principals) hold every scope; an API key holds only the scopes granted
when it was created (names in :data:`viarte.scopes.SCOPES`). A key lacking any scope an RPC needs is
refused with PERMISSION_DENIED, ErrorInfo reason ``MISSING_SCOPE`` and ``metadata["scope"]`` (the
first one it lacks), before the handler runs. ``USER_SESSION`` RPCs (credential and account
management) refuse API keys whatever their scopes. Internal services need no entry: only service
principals may call them.

The rule for work on assets: an RPC needs the scopes of everything it does with the owner's assets,
not only of its own kind. Creating a job reads the assets it names (inputs, timeline clips, face
sources) and stores its result as a new asset: ``jobs:write`` + ``assets:read`` + ``assets:write``.
RenderFrame reads the timeline's assets and stores nothing: ``jobs:write`` + ``assets:read``. Cancel,
Get, List and Watch touch no asset content. (A text-only generation names no input, yet needs
``assets:read`` too: one rule per RPC, checked before the request is parsed.)

A public RPC missing from the table is refused to every API key (fail closed), and
``tests/e2e/test_scopes.py`` fails for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from services.kit.auth import AUTH_DOMAIN, Principal, PrincipalKind
from services.kit.errors import ServiceError
from viarte.scopes import SCOPES

__all__ = ["METHOD_SCOPES", "NO_SCOPE", "SCOPES", "USER_SESSION", "Scopes", "check_scope"]

Scopes = tuple[str, ...]

# Any caller that authenticated (or an anonymous one, for methods a Service declares anonymous).
NO_SCOPE: Scopes = ()
# Signed-in users only: API keys can never call these (they cannot mint or manage credentials).
USER_SESSION: Scopes = ("<user session>",)

_ASSETS_R, _ASSETS_W = ("assets:read",), ("assets:write",)
_JOBS_R, _JOBS_W = ("jobs:read",), ("jobs:write",)
_PROJECTS_R, _PROJECTS_W = ("projects:read",), ("projects:write",)
_ASSISTANT = ("assistant",)
_USAGE_R = ("usage:read",)
_WEBHOOKS_R, _WEBHOOKS_W = ("webhooks:read",), ("webhooks:write",)
# Reads the assets it names and stores its result as a new asset (see the rule above).
_CREATE_JOB = ("jobs:write", "assets:read", "assets:write")


def _service(name: str, **methods: Scopes) -> dict[str, Scopes]:
    return {f"/{name}/{method}": scopes for method, scopes in methods.items()}


def _jobs(name: str, kind: str) -> dict[str, Scopes]:
    return _service(
        name,
        **{f"Create{kind}Job": _CREATE_JOB, f"Cancel{kind}Job": _JOBS_W},
        **{f"Get{kind}Job": _JOBS_R, f"List{kind}Jobs": _JOBS_R, f"Watch{kind}Job": _JOBS_R},
    )


METHOD_SCOPES: Mapping[str, Scopes] = MappingProxyType(
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
        **_jobs("viarte.training.v1.TrainingService", "Training"),
        # A LoRA is a stored asset with its lineage: assets' scopes.
        **_service("viarte.training.v1.LoraService", ListLoras=_ASSETS_R, GetLora=_ASSETS_R, DeleteLora=_ASSETS_W),
        **_service(
            "viarte.inference.v1.AssistantService",
            EnhancePrompt=_ASSISTANT, Chat=_ASSISTANT, GetAssistantStatus=_ASSISTANT,
        ),
        **_jobs("viarte.render.v1.RenderService", "Render"),
        # A preview frame spends render time like a job does, and reads the timeline's assets.
        **_service("viarte.render.v1.RenderService", RenderFrame=("jobs:write", "assets:read"),
                   RenderPlaybackSegment=("jobs:write", "assets:read")),
        # Analysis spends render time and reads the asset, like a preview frame.
        **_service("viarte.render.v1.RenderService", AnalyzeMedia=("jobs:write", "assets:read")),
        **_service("viarte.render.v1.RenderService", GetMediaOverview=("jobs:write", "assets:read")),
        **_service("viarte.render.v1.RenderService", ProposeEdit=("jobs:write", "assets:read")),
        # What the installed ffmpeg offers is public knowledge of the deployment.
        **_service("viarte.render.v1.RenderService", ListCapabilities=NO_SCOPE),
        **_jobs("viarte.render.v1.UpscaleService", "Upscale"),
        **_service(
            "viarte.render.v1.ProjectService",
            GetProject=_PROJECTS_R, ListProjects=_PROJECTS_R,
            CreateProject=_PROJECTS_W, UpdateProject=_PROJECTS_W, DeleteProject=_PROJECTS_W,
        ),
        # The price list is public knowledge of the deployment, like the model catalogue.
        **_service(
            "viarte.account.v1.UsageService",
            GetUsage=_USAGE_R, ListUsageRecords=_USAGE_R, ExportUsage=_USAGE_R, GetPriceEstimate=NO_SCOPE,
        ),
        **_service(
            "viarte.account.v1.WebhookService",
            ListWebhookEndpoints=_WEBHOOKS_R, ListWebhookDeliveries=_WEBHOOKS_R,
            CreateWebhookEndpoint=_WEBHOOKS_W, DeleteWebhookEndpoint=_WEBHOOKS_W, RotateWebhookSecret=_WEBHOOKS_W,
            RedeliverWebhook=_WEBHOOKS_W, EnableWebhookEndpoint=_WEBHOOKS_W, SendTestWebhook=_WEBHOOKS_W,
        ),
    }
)  # fmt: skip

# A typo in the table would lock every key out of an RPC: refuse to start instead.
_unknown = {s for scopes in METHOD_SCOPES.values() if scopes != USER_SESSION for s in scopes} - set(SCOPES)
if _unknown:
    raise RuntimeError(f"unknown scope in METHOD_SCOPES: {_unknown}")


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
    lacking = next((scope for scope in needed if not principal.has_scope(scope)), None)
    if lacking is not None:
        raise ServiceError.permission_denied(
            "MISSING_SCOPE", f"the API key lacks scope {lacking!r}", metadata={"scope": lacking}, domain=AUTH_DOMAIN
        )
