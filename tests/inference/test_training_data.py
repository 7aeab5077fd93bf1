"""Issue 17, second increment: caption files and sidecar captions (hostile input included),
gradient checkpointing (same losses, chosen automatically from the registry's training memory),
and the training memory figures ListModels exposes."""

from __future__ import annotations

import json
from typing import Any

import grpc
import pytest

from services.inference.models.registry import load_registry
from services.inference.training.captions import FILE, MAX_FILE_VIOLATIONS, parse_caption_file
from services.inference.training.worker import use_gradient_checkpointing
from services.inference.worker.protocol import TrainingWork
from services.kit.errors import Violations
from tests.inference.helpers import details, png
from viarte.inference.v1 import generation_pb2 as G
from viarte.training.v1 import training_pb2 as T
from viarte.training.v1 import training_pb2_grpc
from viarte.type.v1 import job_pb2

ASYNC = pytest.mark.asyncio(loop_scope="session")
BASE = {"base_model": "tiny-wan", "rank": 4, "alpha": 4.0, "learning_rate": 5e-3, "width": 64, "height": 64,
        "seed": 3}
INVALID = grpc.StatusCode.INVALID_ARGUMENT


def _parse(text: str) -> tuple[list[tuple[int, str, str]], list[str]]:
    v = Violations()
    out = parse_caption_file(text, v)
    return out, [item.field for item in v.items]


# -- the caption file parser (no servers) ------------------------------------------------------------
def test_caption_files_in_both_formats() -> None:
    jsonl = '{"asset_id": "a1", "caption": "a red cat"}\n\n{"caption": "a dog", "asset_id": "a2"}\r\n'
    assert _parse(jsonl) == ([(0, "a1", "a red cat"), (2, "a2", "a dog")], [])
    text = "# captions\na1 a red cat\n\n  a2\tthe  dog \na3\n"
    assert _parse(text) == ([(1, "a1", "a red cat"), (3, "a2", "the  dog"), (4, "a3", "")], [])


@pytest.mark.parametrize(("text", "fields"), [
    ('{"asset_id": "a", "caption": "x", "colour": "red"}', [f"{FILE}.lines[0].colour"]),
    ('{"asset_id": "a"}\n{"asset_id": "b", "asset_id": "c"}', [f"{FILE}.lines[1].asset_id"]),
    ('{"asset_id": "a"}\n["a", "b"]\n{"asset_id": 7}\n{"asset_id": "a", "caption": 1}',
     [f"{FILE}.lines[1]", f"{FILE}.lines[2].asset_id", f"{FILE}.lines[3].caption"]),
    ('{"asset_id": "a", "caption": "bell \\u0007"}', [f"{FILE}.lines[0].caption"]),
    ('{"asset_id": "a"}\n' + "[" * 10_000, [f"{FILE}.lines[1]"]),  # nested too deep for the parser
    ('{"asset_id": "a"}\n' + "x" * 100_000, [f"{FILE}.lines[1]"]),  # a line too long
    ('{"asset_id": "a", "../../x y": 1}', [f"{FILE}.lines[0].______x_y"]),  # echoed names are sanitised
    ("\n# only a comment\n", [FILE]),
])
def test_caption_file_problems_have_field_paths(text: str, fields: list[str]) -> None:
    assert _parse(text)[1] == fields


def test_a_file_of_bad_lines_reports_a_bounded_number_of_violations() -> None:
    out, fields = _parse("\n".join(json.dumps({"asset_id": "a", f"k{i}": 1}) for i in range(1000)))
    assert out == [] and len(fields) == MAX_FILE_VIOLATIONS + 1 and fields[-1] == FILE


# -- caption assets through the service ---------------------------------------------------------------
def _stub(service: Any) -> Any:
    return training_pb2_grpc.TrainingServiceStub(service.channel)


async def _create(service: Any, user: Any, params: T.TrainingParameters) -> T.TrainingJob:
    answer = await _stub(service).CreateTrainingJob(T.CreateTrainingJobRequest(parameters=params),
                                                    metadata=user.metadata, timeout=30)
    await _stub(service).CancelTrainingJob(T.CancelTrainingJobRequest(id=answer.job.id), metadata=user.metadata)
    return answer.job  # type: ignore[no-any-return]


@ASYNC
async def test_caption_file_and_sidecars_become_the_stored_examples(
    inference_service: Any, storage_service: Any, user_factory: Any
) -> None:
    user = await user_factory()
    a = await storage_service.upload(user, png(64, 64), "a.png", "image/png")
    b = await storage_service.upload(user, png(64, 64, (0, 200, 0)), "b.png", "image/png")
    lines = [{"asset_id": a, "caption": "a red square"}, {"asset_id": b, "caption": "un carré vert"}]
    jsonl = await storage_service.upload(user, "\n".join(json.dumps(x) for x in lines).encode(), "c.jsonl",
                                         "application/jsonl")
    text = await storage_service.upload(user, f"\ufeff# mine\n{b} green\n".encode(), "c.txt", "text/plain")
    sidecar = await storage_service.upload(user, b"a red\nsquare\n", "a.txt", "text/plain")
    params = T.TrainingParameters(**BASE, steps=1)
    params.dataset.examples.add(asset_id=a, caption_asset_id=sidecar)
    params.dataset.caption_file_asset_id = jsonl
    job = await _create(inference_service, user, params)
    got = [(e.asset_id, e.caption) for e in job.parameters.dataset.examples]
    assert got == [(a, "a red square"), (a, "a red square"), (b, "un carré vert")]
    assert job.parameters.dataset.caption_file_asset_id == jsonl  # kept as lineage
    only_file = T.TrainingParameters(**BASE, steps=1)
    only_file.dataset.caption_file_asset_id = text
    job = await _create(inference_service, user, only_file)
    assert [(e.asset_id, e.caption) for e in job.parameters.dataset.examples] == [(b, "green")]


@ASYNC
async def test_hostile_caption_assets_are_refused_with_field_paths(
    inference_service: Any, storage_service: Any, user_factory: Any
) -> None:
    user, stranger = await user_factory(), await user_factory()
    mine = await storage_service.upload(user, png(64, 64), "a.png", "image/png")
    theirs = await storage_service.upload(stranger, png(64, 64), "b.png", "image/png")
    their_file = await storage_service.upload(stranger, f"{mine} x\n".encode(), "c.txt", "text/plain")

    async def upload(data: bytes, ctype: str = "text/plain") -> str:
        return str(await storage_service.upload(user, data, "c.txt" if ctype == "text/plain" else "c.jsonl", ctype))

    # Past the 64 bytes storage sniffs: invalid UTF-8 and a NUL, found by the reader.
    latin1 = await upload(f"{mine} a caption long enough to pass the sniffed head ....... caf".encode() + b"\xe9\n")
    nul = await upload(f"{mine} a caption long enough to pass the sniffed head ........ x\x00y\n".encode())
    big = await upload((f"{mine} " + "x" * 1000 + "\n").encode() * 1100)  # > 1 MiB: refused before download
    unknown = await upload(json.dumps({"asset_id": mine, "caption": "x", "colour": 1}).encode(), "application/jsonl")
    foreign_line = await upload(f"{mine} ok\n{theirs} theirs\n".encode())
    stub = _stub(inference_service)
    f = "parameters.dataset.caption_file_asset_id"
    cases: list[tuple[dict[str, Any], list[str]]] = [
        ({"file": latin1}, [f]), ({"file": nul}, [f]), ({"file": big}, [f]), ({"file": mine}, [f]),
        ({"file": their_file}, [f]), ({"file": unknown}, [f"{FILE}.lines[0].colour"]),
        ({"file": foreign_line}, [f"{FILE}.lines[1].asset_id"]),
        ({"sidecar": (mine, "inline too")}, ["parameters.dataset.examples[0].caption_asset_id"]),
        ({"sidecar": (mine, "")}, ["parameters.dataset.examples[0].caption_asset_id"]),
    ]
    for case, fields in cases:
        params = T.TrainingParameters(**BASE, steps=1)
        if "file" in case:
            params.dataset.caption_file_asset_id = case["file"]
        else:
            caption_asset, caption = case["sidecar"]
            params.dataset.examples.add(asset_id=mine, caption=caption, caption_asset_id=caption_asset)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.CreateTrainingJob(T.CreateTrainingJobRequest(parameters=params), metadata=user.metadata)
        assert (err.value.code(), *details(err.value)) == (INVALID, "INVALID_DATASET", fields), case
    listed = await stub.ListTrainingJobs(T.ListTrainingJobsRequest(), metadata=user.metadata)
    assert list(listed.jobs) == []  # nothing queued


@ASYNC
async def test_sample_parameters_are_checked(inference_service: Any, storage_service: Any,
                                             user_factory: Any) -> None:
    user = await user_factory()
    mine = await storage_service.upload(user, png(64, 64), "a.png", "image/png")
    params = T.TrainingParameters(**BASE, steps=10, sample_every_n_steps=5, sample_num_frames=4,
                                  sample_num_inference_steps=1000)
    params.dataset.examples.add(asset_id=mine, caption="x")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _stub(inference_service).CreateTrainingJob(T.CreateTrainingJobRequest(parameters=params),
                                                         metadata=user.metadata)
    assert details(err.value) == ("INVALID_PARAMETERS", [
        "parameters.validation_prompt", "parameters.sample_num_inference_steps", "parameters.sample_num_frames"])


# -- gradient checkpointing and training memory ---------------------------------------------------------
@ASYNC
async def test_gradient_checkpointing_trains_the_same_steps(
    inference_service: Any, storage_service: Any, user_factory: Any
) -> None:
    user = await user_factory()
    image = await storage_service.upload(user, png(64, 64), "a.png", "image/png")
    losses = {}
    for flag in (False, True):
        params = T.TrainingParameters(**BASE, steps=3, gradient_checkpointing=flag)
        params.dataset.examples.add(asset_id=image, caption="a red square")
        job = (await _stub(inference_service).CreateTrainingJob(T.CreateTrainingJobRequest(parameters=params),
                                                                metadata=user.metadata)).job
        steps = []
        async for m in _stub(inference_service).WatchTrainingJob(T.WatchTrainingJobRequest(id=job.id),
                                                                 metadata=user.metadata, timeout=300):
            if m.HasField("event") and "grad_norm" in m.event.progress.metrics:
                steps.append(m.event.progress.metrics["loss"])
        done = (await _stub(inference_service).GetTrainingJob(T.GetTrainingJobRequest(id=job.id),
                                                              metadata=user.metadata)).job
        assert done.status.state == job_pb2.JOB_STATE_SUCCEEDED and done.result.gradient_checkpointing is flag
        losses[flag] = steps
    # Recomputing activations changes no arithmetic that matters: fp32, tolerance 1e-5 relative.
    assert losses[True] == pytest.approx(losses[False], rel=1e-5) and len(losses[True]) == 3


def test_gradient_checkpointing_is_chosen_from_free_memory_and_the_registry() -> None:
    registry = load_registry()
    model = registry.get("wan2.1-t2v-1.3b")
    assert model is not None and model.training is not None
    work = TrainingWork(job_id="j", model_id=model.id, examples=(), width=832, height=480, num_frames=81, rank=16,
                        alpha=16, learning_rate=1e-4, steps=1, batch_size=1, seed=0, checkpoint_every=0,
                        output_dir="/tmp/x")
    need = model.training_memory_bytes(832, 480, 81) - model.estimated_memory_bytes
    assert use_gradient_checkpointing(work, model, need - 1) and not use_gradient_checkpointing(work, model, need)
    assert not use_gradient_checkpointing(work, model, None)  # CPU: nothing to compare with
    forced = TrainingWork(**{**work.__dict__, "gradient_checkpointing": False})
    assert not use_gradient_checkpointing(forced, model, 0)


@ASYNC
async def test_list_models_states_training_memory(inference_service: Any, user_factory: Any) -> None:
    user = await user_factory()
    models = {m.id: m for m in (await inference_service.stub.ListModels(G.ListModelsRequest(),
                                                                         metadata=user.metadata)).models}
    wan = models["tiny-wan"].training_memory
    assert wan.width == 64 and wan.num_frames == 9 and 0 < wan.gradient_checkpointing_bytes < wan.bytes
    assert not models["tiny-svd"].HasField("training_memory") if "tiny-svd" in models else True
    registry = load_registry()
    for model_id in ("wan2.1-t2v-1.3b", "wan2.2-ti2v-5b"):
        spec = registry.get(model_id)
        assert spec is not None
        full = spec.training_memory_proto()
        assert full is not None and full.gradient_checkpointing_bytes < full.bytes
        # Activations grow with frames: half the frames cost less.
        assert spec.training_memory_bytes(832, 480, 41) < spec.training_memory_bytes(832, 480, 81)
