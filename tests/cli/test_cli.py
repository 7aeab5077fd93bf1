"""The ``viarte`` CLI through Typer's CliRunner and as a subprocess, against the real mesh.

The CLI finds the mesh through ``--state-dir`` (the dev runner's state file) and keeps its session
in the file given by ``--config``, so each test is isolated in its own temp folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from studio_dev.demo import FACE_IMAGE
from tests.fixtures.mesh import MeshUser, RunningMesh
from viarte.cli import _hoist_json, app
from viarte.scopes import SCOPES

pytestmark = pytest.mark.e2e
runner = CliRunner()


class Cli:
    def __init__(self, mesh: RunningMesh, tmp: Path) -> None:
        self.base = ["--state-dir", str(mesh.state_dir), "--config", str(tmp / "viarte.json")]
        self.tmp = tmp

    def __call__(self, *args: str, code: int = 0, stdin: str | None = None) -> str:
        """Runs the CLI; returns stdout (stderr when a failure is expected: errors go there)."""
        argv = _hoist_json([*self.base, *args])
        result = runner.invoke(app, argv, input=stdin)
        assert result.exit_code == code, f"{args}: exit {result.exit_code}\n{result.output}\n{result.exception!r}"
        return result.stdout if code == 0 else result.stderr

    def json(self, *args: str, code: int = 0) -> dict:  # type: ignore[type-arg]
        return json.loads(self("--json", *args, code=code))  # type: ignore[no-any-return]


@pytest.fixture
def cli(mesh: RunningMesh, tmp_path: Path) -> Cli:
    mesh.require("auth")
    return Cli(mesh, tmp_path)


def test_help_and_usage_errors(cli: Cli) -> None:
    assert "generate" in cli("--help")
    cli("generate", code=2)  # missing PROMPT
    cli("up", "--models", "huge", code=2)
    cli("assets", "list", "--kind", "pictures", code=2)
    cli("jobs", "list", "--state", "sleeping", code=2)


def test_register_whoami_and_session_file(cli: Cli, mesh_user: MeshUser) -> None:
    out = cli.json("register", "--email", mesh_user.email, "--password", mesh_user.password)
    assert out["email"] == mesh_user.email
    me = cli.json("whoami")
    assert me["user"]["id"] == out["id"] and "assets:write" in me["scopes"]
    saved = json.loads((cli.tmp / "viarte.json").read_text())
    assert (cli.tmp / "viarte.json").stat().st_mode & 0o077 == 0  # holds refresh tokens: owner only
    assert [s["email"] for s in saved["sessions"].values()] == [mesh_user.email]
    cli("refresh")
    cli("logout")
    cli("whoami", code=3)  # not signed in
    cli("login", stdin=f"{mesh_user.email}\n{mesh_user.password}\n")  # prompted
    assert cli.json("whoami")["user"]["email"] == mesh_user.email
    cli("login", "--email", mesh_user.email, "--password", "wrong password here", code=3)


def test_users_admin_commands(cli: Cli, mesh: RunningMesh, mesh_user: MeshUser) -> None:
    created = cli.json("register", "--email", mesh_user.email, "--password", mesh_user.password)
    cli("users", "list", code=3)  # PERMISSION_DENIED for a plain user
    email, password = mesh.admin
    cli("login", "--email", email, "--password", password)
    users = {u["email"]: u for u in cli.json("users", "list", "--page-size", "1000")["users"]}
    assert users[mesh_user.email]["id"] == created["id"]
    updated = cli.json("users", "update", created["id"], "--role", "admin")
    assert updated["role"] == "ROLE_ADMIN"
    cli("users", "update", created["id"], "--role", "owner", code=2)
    disabled = cli.json("users", "update", created["id"], "--disable")
    assert disabled["disabled"] is True
    cli("login", "--email", mesh_user.email, "--password", mesh_user.password, code=3)  # ACCOUNT_DISABLED
    assert cli.json("public-keys")["keys"]


def test_api_keys_and_assets(cli: Cli, mesh: RunningMesh, mesh_user: MeshUser) -> None:
    mesh.require("storage")
    cli("register", "--email", mesh_user.email, "--password", mesh_user.password)
    assert [s["name"] for s in cli.json("api-keys", "scopes")["scopes"]] == list(SCOPES)
    assert "projects:write" in cli("api-keys", "scopes")
    refused = cli("api-keys", "create", "typo", "-s", "assets:reed", code=5)
    assert "scopes[0]" in refused and "assets:read" in refused  # the field path and the choices
    created = cli.json("api-keys", "create", "reader", "-s", "assets:read")
    assert created["secret"] and created["api_key"]["scopes"] == ["assets:read"]
    uploaded = cli.json("assets", "upload", str(FACE_IMAGE))
    asset_id = uploaded["assets"][0]["id"]
    listed = cli.json("assets", "list", "--kind", "image")
    assert [a["id"] for a in listed["assets"]] == [asset_id]
    # The API key reads but cannot write.
    as_key = ["--api-key", created["secret"]]
    assert cli.json(*as_key, "assets", "info", asset_id)["id"] == asset_id
    denied = cli(*as_key, "assets", "upload", str(FACE_IMAGE), code=3)
    assert "MISSING_SCOPE" in denied and "-s assets:write" in denied
    out = cli.json("assets", "download", asset_id, str(cli.tmp / "face.png"))
    assert Path(out["path"]).read_bytes() == FACE_IMAGE.read_bytes()
    cli.json("assets", "download", asset_id, str(cli.tmp / "via-url.png"), "--via-url")
    assert (cli.tmp / "via-url.png").read_bytes() == FACE_IMAGE.read_bytes()
    cli("assets", "rm", asset_id)
    cli("assets", "info", asset_id, code=4)
    keys = cli.json("api-keys", "list")["api_keys"]
    cli("api-keys", "revoke", keys[0]["id"])
    # Auth answers for revoked keys at once (other services cache verdicts for up to 30 s).
    cli(*as_key, "whoami", code=3)


def test_generate_and_jobs_commands(cli: Cli, mesh: RunningMesh, mesh_user: MeshUser) -> None:
    mesh.require("storage", "inference")
    cli("register", "--email", mesh_user.email, "--password", mesh_user.password)
    models = cli.json("models")["models"]
    assert "tiny-wan" in {m["id"] for m in models}
    bad = cli.json("generate", "x", "--model", "tiny-modelscope", "--width", "70", code=5)
    assert bad["reason"] == "INVALID_PARAMETERS" and bad["field_violations"]
    # --devices reaches the server (issue 15): this mesh's local executor gives one job one device.
    split = cli.json("generate", "x", "--model", "tiny-wan", "--guidance", "5", "--devices", "2", code=5)
    assert split["reason"] == "DEVICES_UNAVAILABLE", split
    out = cli.json(
        "generate", "a fox", "--model", "tiny-modelscope", "--width", "64", "--height", "64", "--frames", "4",
        "--seed", "5", "--download", str(cli.tmp),
    )
    job = out["job"]
    assert job["status"]["state"] == "JOB_STATE_SUCCEEDED" and job["parameters"]["seed"] == "5"
    assert Path(out["downloaded"]).stat().st_size > 0
    listed = cli.json("jobs", "list", "--kind", "generation")
    assert [j["job"]["id"] for j in listed["jobs"]] == [job["id"]]
    got = cli.json("jobs", "get", job["id"])
    assert got["kind"] == "generation" and got["job"]["status"]["placement"]["executor"] == "local"
    assert "placement: local on " in cli("jobs", "get", job["id"])  # where it ran (issue 15)
    # Its cost (issue 16): estimated at create, ceil(0.05 * 64*64/1e6 MP * 4 frames * steps) = 1.
    assert got["job"]["status"]["cost"]["estimated_credits"] == "1"
    assert "cost: " in cli("jobs", "get", job["id"])
    cli("jobs", "watch", job["id"])  # a finished job: its final snapshot, exit 0
    queued = cli.json("generate", "later", "--model", "tiny-modelscope", "--width", "64", "--height", "64",
                      "--frames", "4", "--detach")  # fmt: skip
    cancelled = cli.json("jobs", "cancel", queued["id"])["jobs"][0]["job"]
    assert cancelled["status"]["state"] in ("JOB_STATE_CANCELLED", "JOB_STATE_RUNNING", "JOB_STATE_SUCCEEDED")
    cli("jobs", "get", "no-such-job", code=4)


def test_generate_with_magic_prompt(cli: Cli, mesh: RunningMesh, mesh_user: MeshUser) -> None:
    mesh.require("inference")
    from tests.fakes.chat_server import Reply

    cli("register", "--email", mesh_user.email, "--password", mesh_user.password)
    mesh.chat.script(Reply(content='{"prompt": "a fox leaping over a frozen stream, cinematic", '
                                   '"negative_prompt": "watermark"}'))  # fmt: skip
    out = cli.json("generate", "fox", "--magic-prompt", "--model", "tiny-modelscope", "--width", "64",
                   "--height", "64", "--frames", "4", "--detach")  # fmt: skip
    assert out["parameters"]["prompt"] == "a fox leaping over a frozen stream, cinematic"
    assert out["parameters"]["negative_prompt"] == "watermark"
    assert "fox" in json.dumps(mesh.chat.requests[0].body)
    cli("jobs", "cancel", out["id"])
    mesh.chat.script(Reply(content="Hello from the assistant."))
    assert "Hello from the assistant." in cli("assistant", "chat", "hi")


def test_train_uploads_a_caption_file_into_the_dataset(cli: Cli, mesh: RunningMesh, mesh_user: MeshUser) -> None:
    mesh.require("storage", "inference")
    from tests.inference.helpers import png

    cli("register", "--email", mesh_user.email, "--password", mesh_user.password)
    (cli.tmp / "blue.png").write_bytes(png(64, 64, (20, 40, 200)))
    uploaded = cli.json("assets", "upload", str(cli.tmp / "blue.png"))["assets"][0]["id"]
    folder = cli.tmp / "data"
    folder.mkdir()
    (folder / "red.png").write_bytes(png(64, 64))
    (folder / "red.txt").write_text("a red square\n")
    size = ("--steps", "1", "--width", "64", "--height", "64", "--detach")
    # JSON Lines beside a folder: the folder's examples, then the file's (resolved by the server).
    (cli.tmp / "captions.jsonl").write_text(json.dumps({"asset_id": uploaded, "caption": "a blue square"}) + "\n")
    job = cli.json("train", str(folder), "--captions", str(cli.tmp / "captions.jsonl"), *size)
    dataset = job["parameters"]["dataset"]
    assert [e["caption"] for e in dataset["examples"]] == ["a red square", "a blue square"]
    assert dataset["examples"][1]["asset_id"] == uploaded
    assert cli.json("assets", "info", dataset["caption_file_asset_id"])["content_type"] == "application/jsonl"
    cli("jobs", "cancel", job["id"])
    # "<asset_id> <caption>" text alone, no folder.
    (cli.tmp / "captions.txt").write_text(f"# one example\n{uploaded} a blue square, again\n")
    job = cli.json("train", "--captions", str(cli.tmp / "captions.txt"), *size)
    assert [(e["asset_id"], e["caption"]) for e in job["parameters"]["dataset"]["examples"]] == [
        (uploaded, "a blue square, again")]
    cli("jobs", "cancel", job["id"])
    # A line without a caption (and no trigger word): refused with the line's field path, nothing queued.
    (cli.tmp / "bad.txt").write_text(f"{uploaded}\n")
    refused = cli.json("train", "--captions", str(cli.tmp / "bad.txt"), *size, code=5)
    assert refused["reason"] == "INVALID_DATASET", refused
    assert any(v["field"].startswith("parameters.dataset.caption_file.lines[0]") for v in refused["field_violations"])
    assert len(cli.json("jobs", "list", "--kind", "training")["jobs"]) == 2
    cli("train", code=2)  # neither a folder nor a caption file


def test_subprocess_json_and_exit_codes(mesh: RunningMesh, mesh_user: MeshUser, tmp_path: Path) -> None:
    mesh.require("auth")
    base = [sys.executable, "-m", "viarte.cli", "--state-dir", str(mesh.state_dir), "--config", str(tmp_path / "c.json")]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *args], capture_output=True, text=True, timeout=120, check=False)

    reg = run("register", "--email", mesh_user.email, "--password", mesh_user.password, "--json")
    assert reg.returncode == 0, reg.stderr
    assert json.loads(reg.stdout)["email"] == mesh_user.email
    status = run("status", "--json")
    assert status.returncode == 0, status.stderr
    state = json.loads(status.stdout)
    assert state["state"] == "ready"
    assert {p["name"] for p in state["processes"] if p["healthy"]} >= {"auth"}
    missing = run("--json", "jobs", "get", "nope")
    assert missing.returncode == 4 and json.loads(missing.stderr)["reason"] == "JOB_NOT_FOUND"
    usage = run("generate")
    assert usage.returncode == 2 and "Usage: viarte generate" in usage.stderr


def test_hoist_json_accepts_the_flag_anywhere() -> None:
    assert _hoist_json(["assets", "list", "--json"]) == ["--json", "assets", "list"]
    assert _hoist_json(["generate", "--", "--json"]) == ["generate", "--", "--json"]


def test_ctrl_c_cancels_the_job_and_exits_130(mesh: RunningMesh, mesh_user: MeshUser, tmp_path: Path) -> None:
    mesh.require("auth", "inference")
    import signal

    from viarte import Stage

    base = [sys.executable, "-m", "viarte", "--state-dir", str(mesh.state_dir), "--config", str(tmp_path / "c.json")]
    subprocess.run([*base, "register", "--email", mesh_user.email, "--password", mesh_user.password], check=True, timeout=60)
    proc = subprocess.Popen(
        [*base, "generate", "slow", "--model", "tiny-modelscope", "--width", "192", "--height", "192", "--frames", "8", "--steps", "50"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        # A suite started in the background (`cmd &` without job control) inherits SIGINT ignored,
        # and Python keeps it ignored: give the CLI a terminal's default, as a user's shell would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        with mesh.client() as client:
            client.auth.login(mesh_user.email, mesh_user.password)
            deadline = time.monotonic() + 60
            while not (jobs := client.generation.list().items) and time.monotonic() < deadline:
                time.sleep(0.1)
            (job,) = jobs
            for update in client.generation.watch(job.id):
                if update.stage is Stage.DENOISING:
                    break
            proc.send_signal(signal.SIGINT)  # Ctrl-C
            _out, err = proc.communicate(timeout=60)
            assert proc.returncode == 130, err[-2000:]
            assert f"cancelled job {job.id}" in err
            deadline = time.monotonic() + 60
            while client.generation.get(job.id).status.state != 5 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert client.generation.get(job.id).status.state == 5  # JOB_STATE_CANCELLED
    finally:
        if proc.poll() is None:
            proc.kill()
        # A failure above must not leave its 50-step job on the shared mesh's worker: every later
        # generation in the session would queue behind it and time out.
        with mesh.client() as client:
            client.auth.login(mesh_user.email, mesh_user.password)
            for left in client.generation.list().items:
                if left.parameters.prompt == "slow" and left.status.state in (1, 2):  # QUEUED, RUNNING
                    client.generation.cancel(left.id)
