"""A Hugging Face hub on 127.0.0.1 speaking the part of the hub protocol huggingface_hub's downloads use.

Endpoints (as huggingface.co serves them): ``GET /api/models/<repo>/revision/<rev>`` (model info
with the commit sha), ``GET /api/models/<repo>/tree/<rev>?recursive=`` (files with git blob ids and
LFS sha256), ``POST /api/models/<repo>/paths-info/<rev>``, ``HEAD|GET /<repo>/resolve/<rev>/<path>``
(``X-Repo-Commit``, ``ETag``/``X-Linked-Etag``, ``X-Linked-Size``, HTTP Range → 206), plus plain
files under ``/files/<name>`` (release-URL artifacts, Range supported).

Faults for tests: ``cut_after[path] = n`` ends the first GET of ``path`` after n bytes (a dropped
connection); ``tamper[path] = bytes`` serves other bytes than the tree's checksums promise.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

_WEIGHTS = (".safetensors", ".bin", ".pth", ".pt", ".onnx", ".ckpt", ".zip")


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data, usedforsecurity=False).hexdigest()


@dataclass
class Repo:
    repo_id: str
    files: dict[str, bytes]
    commit: str = field(default_factory=lambda: secrets.token_hex(20))

    @classmethod
    def from_folder(cls, repo_id: str, folder: Path, extra: dict[str, bytes] | None = None) -> Repo:
        files = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
        return cls(repo_id, {**files, **(extra or {})})

    def is_lfs(self, path: str) -> bool:
        return path.endswith(_WEIGHTS)

    def entry(self, path: str) -> dict[str, Any]:
        data = self.files[path]
        entry: dict[str, Any] = {"type": "file", "oid": git_blob_id(data), "size": len(data), "path": path}
        if self.is_lfs(path):
            # For LFS files the git blob is the pointer; the content's checksum is the LFS oid.
            entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        return entry

    def etag(self, path: str) -> str:
        entry = self.entry(path)
        return str(entry["lfs"]["oid"]) if "lfs" in entry else str(entry["oid"])


@dataclass
class FakeHub:
    repos: dict[str, Repo] = field(default_factory=dict)
    plain: dict[str, bytes] = field(default_factory=dict)
    cut_after: dict[str, int] = field(default_factory=dict)
    tamper: dict[str, bytes] = field(default_factory=dict)
    log: list[tuple[str, str, str]] = field(default_factory=list)  # (method, path, Range header)
    _server: ThreadingHTTPServer | None = None

    def add(self, repo: Repo) -> Repo:
        self.repos[repo.repo_id] = repo
        return repo

    @property
    def endpoint(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeHub:
        hub = self

        class Handler(_Handler):
            owner = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def gets(self, suffix: str) -> list[str]:
        """Range headers of the GETs whose path ends with ``suffix`` ("" when there was none)."""
        return [r for m, p, r in self.log if m == "GET" and p.endswith(suffix)]


class _Handler(BaseHTTPRequestHandler):
    owner: FakeHub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet test output
        pass

    # -- helpers ---------------------------------------------------------------------------------
    def _json(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _not_found(self, code: str) -> None:
        self._json(404, {"error": code}, {"X-Error-Code": code, "X-Error-Message": code})

    def _repo(self, repo_id: str, revision: str) -> Repo | None:
        repo = self.owner.repos.get(repo_id)
        if repo is None:
            self._not_found("RepoNotFound")
            return None
        if revision not in ("main", repo.commit):
            self._not_found("RevisionNotFound")
            return None
        return repo

    def _body(self, data: bytes, headers: dict[str, str], key: str, head: bool) -> None:
        start, status = 0, 200
        wanted = self.headers.get("Range", "")
        match = re.fullmatch(r"bytes=(\d+)-", wanted)
        if match and int(match[1]) < len(data):
            start, status = int(match[1]), 206
        elif match:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(data) - start))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if head:
            return
        payload = data[start:]
        cut = self.owner.cut_after.pop(key, None)
        if cut is not None:
            self.wfile.write(payload[:cut])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(2)  # the client sees the connection drop mid-body
            return
        self.wfile.write(payload)

    # -- routes ----------------------------------------------------------------------------------
    def _route(self, head: bool) -> None:
        url = urlsplit(self.path)
        path = unquote(url.path)
        self.owner.log.append((self.command, path, self.headers.get("Range", "")))
        if m := re.fullmatch(r"/api/models/([^/]+/[^/]+)/revision/([^/]+)", path):
            if repo := self._repo(m[1], m[2]):
                siblings = [{"rfilename": p} for p in sorted(repo.files)]
                self._json(200, {"id": repo.repo_id, "sha": repo.commit, "siblings": siblings, "private": False})
            return
        if m := re.fullmatch(r"/api/models/([^/]+/[^/]+)/tree/([^/]+)", path):
            if repo := self._repo(m[1], m[2]):
                recursive = parse_qs(url.query).get("recursive", ["false"])[0].lower() == "true"
                paths = [p for p in sorted(repo.files) if recursive or "/" not in p]
                self._json(200, [repo.entry(p) for p in paths])
            return
        if m := re.fullmatch(r"/([^/]+/[^/]+)/resolve/([^/]+)/(.+)", path):
            repo = self._repo(m[1], m[2])
            if repo is None:
                return
            if m[3] not in repo.files:
                self._not_found("EntryNotFound")
                return
            headers = {"X-Repo-Commit": repo.commit, "ETag": f'"{repo.etag(m[3])}"'}
            if repo.is_lfs(m[3]):
                headers["X-Linked-Etag"] = f'"{repo.etag(m[3])}"'
                headers["X-Linked-Size"] = str(len(repo.files[m[3]]))
            data = self.owner.tamper.get(m[3], repo.files[m[3]])
            self._body(data, headers, m[3], head)
            return
        if path.startswith("/files/") and path[len("/files/") :] in self.owner.plain:
            name = path[len("/files/") :]
            self._body(self.owner.plain[name], {"Content-Type": "application/octet-stream"}, name, head)
            return
        self._not_found("NotFound")

    def do_GET(self) -> None:
        self._route(head=False)

    def do_HEAD(self) -> None:
        self._route(head=True)

    def do_POST(self) -> None:
        path = unquote(urlsplit(self.path).path)
        length = int(self.headers.get("Content-Length", "0"))
        form = parse_qs(self.rfile.read(length).decode())
        self.owner.log.append(("POST", path, ""))
        if m := re.fullmatch(r"/api/models/([^/]+/[^/]+)/paths-info/([^/]+)", path):
            if repo := self._repo(m[1], m[2]):
                self._json(200, [repo.entry(p) for p in form.get("paths", []) if p in repo.files])
            return
        self._not_found("NotFound")
