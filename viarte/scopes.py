"""The API-key scopes: the names a key can be granted (``viarte api-keys create -s NAME``).

The SDK holds the vocabulary because it is the ground floor: the CLI lists it without importing
server code, and the services' one table of which RPC needs which scope
(``services/kit/scopes.py``) is built from these names. Signed-in users hold every scope; an API
key holds only those granted at creation, and a call outside them answers PERMISSION_DENIED with
the ErrorInfo reason ``MISSING_SCOPE`` and ``metadata["scope"]`` naming the one it needs.
"""

from __future__ import annotations

__all__ = ["SCOPES"]

# name → what it allows. An RPC needs the scopes of all it does with the owner's assets: creating a
# job reads the assets it names and stores its result as a new asset, so it needs `jobs:write`,
# `assets:read` and `assets:write`; a preview frame reads the timeline's assets (`jobs:write`,
# `assets:read`). A key without `assets:read` can neither download an asset nor have a job read it.
SCOPES: dict[str, str] = {
    "assets:read": "list, inspect and download assets (and trained LoRAs); with jobs:write, let jobs and preview "
    "frames read them",
    "assets:write": "upload and delete assets; with jobs:write, let jobs store their results as new assets",
    "jobs:read": "get, list and watch generation, face swap, training, render and upscale jobs",
    "jobs:write": "create (also needs assets:read and assets:write) and cancel those jobs, and render "
    "preview frames (also needs assets:read)",
    "projects:read": "get and list editor projects",
    "projects:write": "create, update and delete editor projects",
    "assistant": "Magic Prompt and the editor's assistant chat",
    "usage:read": "usage totals, usage records and their CSV/JSONL export",
    "webhooks:read": "list webhook endpoints and their delivery logs",
    "webhooks:write": "create, delete and rotate the secret of webhook endpoints, and redeliver events",
}
