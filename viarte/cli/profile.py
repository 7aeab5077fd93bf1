"""The CLI's saved state: sessions (token pairs) per auth endpoint and default endpoints.

A JSON file, ``<user config dir>/viarte/config.json`` by default (``--config`` / ``VIARTE_CONFIG``
to move it), written atomically with mode 0600 because it holds refresh tokens.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from viarte.credentials import Tokens

__all__ = ["Profile", "Session", "default_config_path", "mesh_endpoints"]


def default_config_path() -> Path:
    import typer  # knows each platform's config folder

    return Path(typer.get_app_dir("viarte")) / "config.json"


@dataclass
class Session:
    email: str
    user_id: str
    tokens: Tokens

    def to_dict(self) -> dict[str, Any]:
        return {"email": self.email, "user_id": self.user_id, "tokens": self.tokens.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Session:
        return cls(data.get("email", ""), data.get("user_id", ""), Tokens.from_dict(data["tokens"]))


@dataclass
class Profile:
    path: Path
    endpoints: dict[str, str] = field(default_factory=dict)
    # Keyed by the auth service's address: tokens from one mesh mean nothing to another.
    sessions: dict[str, Session] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> Profile:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return cls(path)
        sessions = {}
        for key, value in (data.get("sessions") or {}).items():
            try:
                sessions[key] = Session.from_dict(value)
            except (KeyError, TypeError):
                continue
        return cls(path, dict(data.get("endpoints") or {}), sessions)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"endpoints": self.endpoints, "sessions": {k: s.to_dict() for k, s in self.sessions.items()}}
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2)
        tmp.replace(self.path)

    def session(self, auth_address: str) -> Session | None:
        return self.sessions.get(auth_address)

    def remember(self, auth_address: str, session: Session) -> None:
        self.sessions[auth_address] = session
        self.save()

    def forget(self, auth_address: str) -> None:
        if self.sessions.pop(auth_address, None) is not None:
            self.save()


def mesh_endpoints(state_dir: Path) -> tuple[dict[str, str], str] | None:
    """The endpoints (and gateway URL) of a ready dev mesh recorded in ``state_dir``, if any.
    Reads the dev runner's state file directly so the CLI needs no server package for it."""
    try:
        state = json.loads((state_dir / "mesh" / "state.json").read_text())
    except (OSError, ValueError):
        return None
    if state.get("state") != "ready":
        return None
    pid = int(state.get("supervisor_pid") or 0)
    try:
        if pid:
            os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass
    return dict(state.get("endpoints") or {}), str(state.get("gateway_url") or "")
