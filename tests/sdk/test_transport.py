"""The SDK's transport behaviour over a real loopback gRPC server with scripted failures."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import grpc
import pytest
import pytest_asyncio

import viarte._sync
from tests.sdk.scripted import LossyProxy, Script, ScriptedGeneration, start_lossy_proxy, start_scripted
from viarte import AsyncClient, Client, RetryPolicy, Tokens, generation_parameters
from viarte._sync import LoopThread
from viarte.errors import DeadlineExceeded, InvalidArgument, JobFailed, NotFound, Unauthenticated, Unavailable
from viarte.inference.v1 import generation_pb2, generation_pb2_grpc
from viarte.jobs import JobState, Stage

FAST = RetryPolicy(initial_backoff=0.01, max_backoff=0.05, max_attempts=4)
PARAMS = generation_parameters(model="tiny-wan-t2v", prompt="a red fox", num_frames=5)


class Scripted:
    def __init__(self, server: grpc.aio.Server, port: int, servicer: ScriptedGeneration) -> None:
        self.server, self.port, self.servicer = server, port, servicer

    @property
    def record(self):  # type: ignore[no-untyped-def]
        return self.servicer.record

    def client(self, **kw) -> AsyncClient:  # type: ignore[no-untyped-def]
        kw.setdefault("retry", FAST)
        return AsyncClient({"inference": f"127.0.0.1:{self.port}"}, **kw)


@pytest_asyncio.fixture
async def scripted(request: pytest.FixtureRequest) -> AsyncIterator[Scripted]:
    script = getattr(request, "param", None) or Script()
    server, port, servicer = await start_scripted(script)
    yield Scripted(server, port, servicer)
    await server.stop(0)


def with_script(**kw):  # type: ignore[no-untyped-def]
    return pytest.mark.parametrize("scripted", [Script(**kw)], indirect=True, ids=[""])


@with_script(unavailable_times=2, retry_after=0.3)
async def test_unavailable_twice_then_success_honours_retry_info(scripted: Scripted) -> None:
    async with scripted.client() as client:
        models = await client.generation.list_models()
    assert [m.id for m in models] == ["tiny-wan-t2v"]
    times = scripted.record.attempts["ListModels"]
    assert len(times) == 3
    # The backoff is 10-50 ms, but the server's RetryInfo asked for 300 ms: it wins.
    assert all(b - a >= 0.29 for a, b in itertools.pairwise(times))
    # One logical call: every attempt carries the same request id.
    ids = {md["x-request-id"] for md in scripted.record.metadata}
    assert len(ids) == 1


@with_script(unavailable_times=100)
async def test_unavailable_gives_up_after_max_attempts(scripted: Scripted) -> None:
    async with scripted.client(retry=RetryPolicy(initial_backoff=0.01, max_attempts=3)) as client:
        with pytest.raises(Unavailable) as caught:
            await client.generation.list_models()
    assert caught.value.reason == "WARMING_UP"
    assert caught.value.domain == "viarte.inference"
    assert len(scripted.record.attempts["ListModels"]) == 3


@with_script(create_unavailable_times=1)
async def test_create_is_retried_with_its_request_id_and_makes_one_job(scripted: Scripted) -> None:
    async with scripted.client() as client:
        job = await client.generation.create(PARAMS)
    ids = scripted.record.request_ids
    assert len(ids) == 2 and ids[0] == ids[1] and len(ids[0]) >= 16
    assert job.request_id == ids[0]
    assert len(scripted.servicer.jobs) == 1


@with_script(create_unavailable_times=1)
async def test_call_without_request_id_is_never_retried(scripted: Scripted) -> None:
    async with scripted.client() as client:
        stub = client.transport.stub(generation_pb2_grpc.GenerationServiceStub, "inference")
        request = generation_pb2.CreateGenerationJobRequest(parameters=PARAMS)  # no request_id
        with pytest.raises(Unavailable):
            await client.transport.unary(stub.CreateGenerationJob, request, retry=bool(request.request_id))
    assert len(scripted.record.attempts["CreateGenerationJob"]) == 1


@with_script(get_delay=3.0)
async def test_per_call_deadline_expires(scripted: Scripted) -> None:
    async with scripted.client() as client:
        job = await client.generation.create(PARAMS)
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded):
            await client.generation.get(job.id, timeout=0.3)
        assert time.monotonic() - started < 2.0


@with_script(get_delay=3.0)
async def test_client_default_deadline_applies(scripted: Scripted) -> None:
    async with scripted.client(timeout=0.3) as client:
        job = await client.generation.create(PARAMS)
        with pytest.raises(DeadlineExceeded):
            await client.generation.get(job.id)


@with_script()
async def test_invalid_argument_carries_field_violations(scripted: Scripted) -> None:
    bad = generation_parameters(model="tiny-wan-t2v", prompt="", width=17)
    async with scripted.client() as client:
        with pytest.raises(InvalidArgument) as caught:
            await client.generation.create(bad)
        with pytest.raises(NotFound) as missing:
            await client.generation.get("nope")
    err = caught.value
    assert err.reason == "INVALID_PARAMETERS"
    assert [(v.field, v.description) for v in err.field_violations] == [
        ("parameters.width", "must be a multiple of 16"),
        ("parameters.prompt", "must not be empty"),
    ]
    assert err.request_id  # the id the SDK sent, to find the server's log line
    assert missing.value.reason == "JOB_NOT_FOUND"
    assert len(scripted.record.attempts["CreateGenerationJob"]) == 1  # never retried


@pytest.mark.parametrize(
    "scripted", [Script(drop_after=3), Script(drop_after=3, drop_with_error=False)], indirect=True,
    ids=["unavailable", "clean-end"],
)
async def test_watch_resumes_after_dropped_stream(scripted: Scripted) -> None:
    async with scripted.client() as client:
        job = await client.generation.create(PARAMS)
        updates = [u async for u in client.generation.watch(job.id)]
    assert scripted.record.after_sequences == [0, 3]
    assert updates[0].snapshot and updates[0].state is JobState.QUEUED
    sequences = [u.sequence for u in updates[1:]]
    assert sequences == list(range(1, 9))  # every event once, in order, across the reconnect
    steps = [u.step for u in updates if u.stage is Stage.DENOISING]
    assert steps == [1, 2, 3, 4, 5, 6]
    assert updates[-1].terminal and updates[-1].job.result.video_asset_id == "asset-result"


@with_script()
async def test_run_returns_the_finished_job_with_progress(scripted: Scripted) -> None:
    seen: list[str] = []
    async with scripted.client() as client:
        job = await client.generation.run(PARAMS, on_progress=lambda u: seen.append(u.describe()))
    assert job.result.video_asset_id == "asset-result"
    assert "denoising step 3/6" in seen and seen[-1] == "succeeded"


@with_script(final_state=4)
async def test_failed_job_raises_job_failed_with_reason(scripted: Scripted) -> None:
    async with scripted.client() as client:
        with pytest.raises(JobFailed) as caught:
            await client.generation.run(PARAMS)
    assert caught.value.reason == "OUT_OF_MEMORY"
    assert caught.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert caught.value.job.status.state == 4


@with_script(hang_watch=True)
async def test_asyncio_cancellation_cancels_the_job(scripted: Scripted) -> None:
    async with scripted.client() as client:
        task = asyncio.create_task(client.generation.run(PARAMS))
        while "WatchGenerationJob" not in scripted.record.attempts:  # noqa: ASYNC110 - polling a record
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert scripted.record.cancels == ["job-1"]


@with_script(hang_watch=True)
async def test_wait_timeout_cancels_when_asked(scripted: Scripted) -> None:
    async with scripted.client() as client:
        with pytest.raises(DeadlineExceeded):
            await client.generation.run(PARAMS, timeout=0.3)
    assert scripted.record.cancels == ["job-1"]


@pytest.fixture
def interactive_sigint() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt, as in an interactive program: a suite started in the
    background (`cmd &` without job control) inherits SIGINT ignored."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@pytest.mark.parametrize("delivered_to", ["process", "another thread"])
@pytest.mark.usefixtures("interactive_sigint")
def test_sync_client_ctrl_c_cancels_the_job(delivered_to: str) -> None:
    """Ctrl-C is process-wide: the kernel may hand it to any thread (gRPC's, the SDK loop's), which
    only flags it for the main thread. Either way the waiting call raises KeyboardInterrupt."""
    server_loop = LoopThread()
    server, port, servicer = server_loop.run(start_scripted(Script(hang_watch=True)))
    try:
        def interrupt_when_watching() -> None:
            deadline = time.monotonic() + 60
            while "WatchGenerationJob" not in servicer.record.attempts and time.monotonic() < deadline:
                time.sleep(0.01)
            if delivered_to == "process":
                os.kill(os.getpid(), signal.SIGINT)  # a real Ctrl-C
            else:
                signal.pthread_kill(threading.get_ident(), signal.SIGINT)  # as the kernel may route it

        with Client({"inference": f"127.0.0.1:{port}"}, retry=FAST) as client:
            threading.Thread(target=interrupt_when_watching, daemon=True).start()
            with pytest.raises(KeyboardInterrupt):
                client.generation.run(PARAMS)
        assert servicer.record.cancels == ["job-1"]
    finally:
        server_loop.run(server.stop(0))
        server_loop.close()


@pytest.mark.usefixtures("interactive_sigint")
def test_sync_ctrl_c_while_the_create_answer_is_on_its_way_cancels_the_job() -> None:
    """Ctrl-C after the server made the job but before its answer arrived (the CLI's race on a busy
    machine): the client never learned the job's id, yet the job must not run on. The same
    request_id names it: the replay returns that job, which is then cancelled."""
    server_loop = LoopThread()
    server, port, servicer = server_loop.run(start_scripted(Script(create_delay=30)))
    try:
        def interrupt_once_created() -> None:
            deadline = time.monotonic() + 60
            while not servicer.jobs and time.monotonic() < deadline:
                time.sleep(0.01)
            os.kill(os.getpid(), signal.SIGINT)

        with Client({"inference": f"127.0.0.1:{port}"}, retry=FAST) as client:
            threading.Thread(target=interrupt_once_created, daemon=True).start()
            with pytest.raises(KeyboardInterrupt):
                client.generation.create(PARAMS)
        assert list(servicer.jobs) == ["job-1"] and servicer.record.cancels == ["job-1"]
        first, replay = servicer.record.request_ids
        assert first == replay
    finally:
        server_loop.run(server.stop(0))
        server_loop.close()


def test_sync_ctrl_c_before_the_loop_started_the_wait_still_cancels_the_job(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C lands while the wait's coroutine is still queued behind other work on the SDK's loop
    (a callback holding it for 0.5 s). The call lets the coroutine start, cancels it and waits for
    its clean-up before re-raising, so the job's Cancel has reached the server by then (a program
    exiting or closing its client on the KeyboardInterrupt would otherwise lose it)."""
    server_loop = LoopThread()
    server, port, servicer = server_loop.run(start_scripted(Script(hang_watch=True)))
    busy = threading.Event()
    try:
        with Client({"inference": f"127.0.0.1:{port}"}, retry=FAST) as client:
            job = client.generation.create(PARAMS)
            client._loop.loop.call_soon_threadsafe(busy.wait, 30)  # the loop is busy until `busy` is set

            def ctrl_c_while_waiting(future: object) -> None:
                threading.Timer(0.5, busy.set).start()  # the loop frees up only after the interrupt
                raise KeyboardInterrupt  # the call's coroutine is queued: it cannot have started

            with monkeypatch.context() as patch:
                patch.setattr(viarte._sync, "_interruptible_result", ctrl_c_while_waiting)
                with pytest.raises(KeyboardInterrupt):
                    client.generation.wait(job.id, cancel_on_interrupt=True)
            assert servicer.record.cancels == [job.id]
    finally:
        busy.set()
        server_loop.run(server.stop(0))
        server_loop.close()


def test_sync_client_watch_and_errors() -> None:
    server_loop = LoopThread()
    server, port, _servicer = server_loop.run(start_scripted(Script(drop_after=2)))
    try:
        with Client({"inference": f"127.0.0.1:{port}"}, retry=FAST) as client:
            job = client.generation.create(PARAMS)
            updates = list(client.generation.watch(job.id))
            assert updates[-1].state is JobState.SUCCEEDED
            with pytest.raises(NotFound):
                client.generation.get("missing")
    finally:
        server_loop.run(server.stop(0))
        server_loop.close()


# -- tokens, against the real auth service -------------------------------------------------------
def _tokens(user, access_expires_in: float) -> Tokens:  # type: ignore[no-untyped-def]
    now = time.time()
    return Tokens(user.access_token, now + access_expires_in, user.refresh_token, now + 3600)


@with_script()
async def test_expired_token_is_refreshed_once_and_the_call_retried(scripted: Scripted, auth_service, user_factory) -> None:  # type: ignore[no-untyped-def]
    user = await user_factory()
    scripted.servicer.script.expired_tokens.add(user.access_token)
    saved: list[Tokens] = []
    endpoints = {"auth": auth_service.address, "inference": f"127.0.0.1:{scripted.port}"}
    async with AsyncClient(endpoints, tokens=_tokens(user, 600), on_tokens=saved.append, retry=FAST) as client:
        await client.generation.list_models()
    assert len(saved) == 1 and saved[0].refresh_token != user.refresh_token
    assert scripted.record.tokens == [user.access_token, saved[0].access_token]


@with_script()
async def test_token_near_expiry_is_refreshed_once_for_concurrent_calls(scripted: Scripted, auth_service, user_factory) -> None:  # type: ignore[no-untyped-def]
    user = await user_factory()
    saved: list[Tokens] = []
    endpoints = {"auth": auth_service.address, "inference": f"127.0.0.1:{scripted.port}"}
    async with AsyncClient(endpoints, tokens=_tokens(user, 5), on_tokens=saved.append, retry=FAST) as client:
        await asyncio.gather(*(client.generation.list_models() for _ in range(5)))
        # A second refresh with the rotated token would have revoked the session: this proves it didn't.
        me = await client.auth.me()
    assert me.user.id == user.id
    assert len(saved) == 1
    assert set(scripted.record.tokens) == {saved[0].access_token}


REFRESH = "/viarte.auth.v1.AuthService/Refresh"


@asynccontextmanager
async def lossy_auth(address: str, *, lose: int) -> AsyncIterator[tuple[LossyProxy, str]]:
    """The real auth service behind a proxy that loses the first ``lose`` Refresh answers."""
    proxy = LossyProxy(address, "Refresh", lose=lose)
    server, port = await start_lossy_proxy(proxy)
    try:
        yield proxy, f"127.0.0.1:{port}"
    finally:
        await server.stop(0)
        await proxy.upstream.close()


async def test_a_refresh_whose_answer_is_lost_is_retried_and_the_session_lives_on(auth_service, user_factory) -> None:  # type: ignore[no-untyped-def]
    user = await user_factory()
    saved: list[Tokens] = []
    async with lossy_auth(auth_service.address, lose=1) as (proxy, address):
        async with AsyncClient({"auth": address}, tokens=_tokens(user, 600), on_tokens=saved.append, retry=FAST) as client:
            # The server rotated the token, the answer was lost; the retry (within the server's
            # grace) rotated it again instead of revoking the session.
            tokens = await client.auth.refresh()
            assert proxy.calls.count(REFRESH) == 2
            assert tokens.refresh_token != user.refresh_token
            assert (await client.auth.me()).user.id == user.id
            # The pair the client kept is the live one: it rotates again (a superseded one is reuse).
            await client.auth.refresh()
            assert (await client.auth.me()).user.id == user.id
    assert len(saved) == 2


async def test_refresh_is_retried_at_most_once_and_never_when_refused(auth_service, user_factory) -> None:  # type: ignore[no-untyped-def]
    user = await user_factory()
    async with lossy_auth(auth_service.address, lose=2) as (proxy, address):
        async with AsyncClient({"auth": address}, tokens=_tokens(user, 600), retry=FAST) as client:
            with pytest.raises(Unavailable):
                await client.auth.refresh()
            assert proxy.calls.count(REFRESH) == 2  # FAST allows 4 attempts; a Refresh gets 2
            with pytest.raises(Unauthenticated) as refused:
                await client.auth.exchange_refresh_token("not-a-refresh-token")
            assert refused.value.reason == "TOKEN_INVALID"
            assert proxy.calls.count(REFRESH) == 3


def _self_signed(tmp_path) -> tuple[bytes, bytes]:  # type: ignore[no-untyped-def]
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "viarte.test")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("viarte.test")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


async def test_tls_channel_verifies_the_server_certificate(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from viarte import TlsConfig

    cert, key = _self_signed(tmp_path)
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    servicer = ScriptedGeneration(Script())
    generation_pb2_grpc.add_GenerationServiceServicer_to_server(servicer, server)
    port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key, cert)]))
    await server.start()
    try:
        (tmp_path / "ca.pem").write_bytes(cert)
        tls = TlsConfig.from_files(ca=tmp_path / "ca.pem", server_name="viarte.test")
        async with AsyncClient({"inference": f"127.0.0.1:{port}"}, tls=tls, retry=FAST) as client:
            assert [m.id for m in await client.generation.list_models()] == ["tiny-wan-t2v"]
        # Plaintext against the TLS port, and TLS with the system roots, both fail: never silently insecure.
        async with AsyncClient({"inference": f"127.0.0.1:{port}"}, retry=FAST, timeout=2) as plain:
            with pytest.raises(Unavailable):
                await plain.generation.list_models()
        untrusted = TlsConfig(server_name="viarte.test")
        async with AsyncClient({"inference": f"127.0.0.1:{port}"}, tls=untrusted, retry=FAST, timeout=2) as client:
            with pytest.raises(Unavailable):
                await client.generation.list_models()
    finally:
        await server.stop(0)


async def test_download_resumes_from_the_byte_it_reached(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os as _os

    from tests.sdk.scripted import ScriptedStorage, start_storage

    data = _os.urandom(10_500)
    servicer = ScriptedStorage(data, chunk=1000, drop_after=3)
    server, port = await start_storage(servicer)
    try:
        async with AsyncClient({"storage": f"127.0.0.1:{port}"}, retry=FAST) as client:
            path = await client.assets.download("a1", tmp_path / "out.bin")
        assert path.read_bytes() == data
        assert servicer.offsets == [0, 3000]  # the second stream starts where the first one broke
        assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]  # no partial file left behind
    finally:
        await server.stop(0)


async def test_stream_upload_is_retried_whole_with_the_same_request_id() -> None:
    from tests.sdk.scripted import ScriptedStorage, start_storage

    servicer = ScriptedStorage(b"", upload_unavailable_times=1)
    server, port = await start_storage(servicer)
    body = bytes(range(256)) * 2000
    try:
        async with AsyncClient({"storage": f"127.0.0.1:{port}"}, retry=FAST) as client:
            asset = await client.assets.upload(body, name="blob.bin", chunk_size=64 * 1024)
        assert asset.size_bytes == len(body)
        (id1, body1), (id2, body2) = servicer.uploads
        assert id1 == id2 and len(id1) >= 16 and body1 == body2 == body
    finally:
        await server.stop(0)
