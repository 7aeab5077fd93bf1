"""The API-key scopes: the names a key can be granted (``viarte api-keys create -s NAME``).

The SDK holds the vocabulary because it is the ground floor: the CLI lists it without importing
server code, and the services' one table of which RPC needs which scope
(``services/kit/scopes.py``) is built from these names. Signed-in users hold every scope; an API
key holds only those granted at creation, and a call outside them answers PERMISSION_DENIED with
the ErrorInfo reason ``MISSING_SCOPE`` and ``metadata["scope"]`` naming the one it needs.
"""

from __future__ import annotations

__all__ = ["SCOPES"]

# name → what it allows. Creating a job also stores its result as a new asset of the key's owner:
# `jobs:write` covers that, so a key that may only read assets cannot add any.
SCOPES: dict[str, str] = {
    "assets:read": "list, inspect and download assets",
    "assets:write": "upload and delete assets",
    "jobs:read": "get, list and watch generation, face swap, render and upscale jobs",
    "jobs:write": "create and cancel those jobs (their results become new assets) and render preview frames",
    "projects:read": "get and list editor projects",
    "projects:write": "create, update and delete editor projects",
    "assistant": "Magic Prompt and the editor's assistant chat",
}
