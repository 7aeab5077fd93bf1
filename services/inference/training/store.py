"""LoRA rows (a stored safetensors asset + lineage) and training checkpoints and sample clips, in the
inference service's database (migrations 0005, 0007). Blocking: callers go through `run_db`."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from viarte.training.v1 import training_pb2 as T

__all__ = ["Checkpoint", "LoraRow", "LoraStore"]

_meta = sa.MetaData()
_lora = sa.Table(
    "lora", _meta,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("owner_id", sa.String(64)),
    sa.Column("name", sa.String(200)),
    sa.Column("asset_id", sa.String(64)),
    sa.Column("base_model", sa.String(200)),
    sa.Column("training_job_id", sa.String(64)),
    sa.Column("dataset_asset_ids", sa.Text()),
    sa.Column("dataset_sha256", sa.String(64)),
    sa.Column("parameters", sa.LargeBinary()),
    sa.Column("final_loss", sa.Float()),
    sa.Column("steps", sa.Integer()),
    sa.Column("partial", sa.Boolean()),
    sa.Column("create_us", sa.BigInteger()),
)
_checkpoint = sa.Table(
    "training_checkpoint", _meta,
    sa.Column("job_id", sa.String(64), primary_key=True),
    sa.Column("step", sa.Integer(), primary_key=True),
    sa.Column("asset_id", sa.String(64)),
    sa.Column("loss", sa.Float()),
)

_sample = sa.Table(
    "training_sample", _meta,
    sa.Column("job_id", sa.String(64), primary_key=True),
    sa.Column("step", sa.Integer(), primary_key=True),
    sa.Column("asset_id", sa.String(64)),
)


@dataclass(frozen=True)
class LoraRow:
    id: str
    owner_id: str
    name: str
    asset_id: str
    base_model: str
    training_job_id: str
    dataset_asset_ids: tuple[str, ...]
    dataset_sha256: str
    parameters: bytes
    final_loss: float
    steps: int
    partial: bool
    create_us: int

    def to_proto(self) -> T.Lora:
        params = T.TrainingParameters.FromString(self.parameters)
        lora = T.Lora(
            id=self.id, owner_id=self.owner_id, name=self.name, asset_id=self.asset_id, base_model=self.base_model,
            dataset_asset_ids=list(self.dataset_asset_ids), dataset_sha256=self.dataset_sha256, parameters=params,
            training_job_id=self.training_job_id, final_loss=self.final_loss, steps=self.steps, partial=self.partial,
            trigger_word=params.trigger_word,
        )
        lora.create_time.FromMicroseconds(self.create_us)
        return lora


@dataclass(frozen=True)
class Checkpoint:
    step: int
    asset_id: str
    loss: float


def _row(r: sa.Row) -> LoraRow:  # type: ignore[type-arg]
    m = r._mapping
    return LoraRow(
        id=m["id"], owner_id=m["owner_id"], name=m["name"], asset_id=m["asset_id"], base_model=m["base_model"],
        training_job_id=m["training_job_id"], dataset_asset_ids=tuple(json.loads(m["dataset_asset_ids"])),
        dataset_sha256=m["dataset_sha256"], parameters=bytes(m["parameters"]), final_loss=float(m["final_loss"]),
        steps=int(m["steps"]), partial=bool(m["partial"]), create_us=int(m["create_us"]),
    )


class LoraStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, *, owner_id: str, name: str, asset_id: str, base_model: str, training_job_id: str,
            dataset_asset_ids: list[str], dataset_sha256: str, parameters: bytes, final_loss: float,
            steps: int, partial: bool) -> LoraRow:
        """One LoRA per training job: a retry of the job's last step (after a crash between the
        insert and the job's outcome) answers the row already there."""
        values = dict(
            id=str(uuid.uuid4()), owner_id=owner_id, name=name, asset_id=asset_id, base_model=base_model,
            training_job_id=training_job_id, dataset_asset_ids=json.dumps(dataset_asset_ids),
            dataset_sha256=dataset_sha256, parameters=parameters, final_loss=final_loss, steps=steps,
            partial=partial, create_us=time.time_ns() // 1000,
        )
        try:
            with self.engine.begin() as c:
                c.execute(_lora.insert().values(**values))
        except IntegrityError:
            with self.engine.connect() as c:
                found = c.execute(_lora.select().where(_lora.c.training_job_id == training_job_id)).first()
            if found is None:
                raise
            return _row(found)
        row = self.get(str(values["id"]))
        assert row is not None
        return row

    def get(self, lora_id: str, owner_id: str | None = None) -> LoraRow | None:
        q = _lora.select().where(_lora.c.id == lora_id)
        if owner_id is not None:
            q = q.where(_lora.c.owner_id == owner_id)
        with self.engine.connect() as c:
            r = c.execute(q).first()
        return _row(r) if r is not None else None

    def page(self, owner_id: str, base_model: str, limit: int,
             before: tuple[int, str] | None) -> list[LoraRow]:
        """Newest first; `before` = (create_us, id) of the last row of the previous page."""
        q = _lora.select().where(_lora.c.owner_id == owner_id)
        if base_model:
            q = q.where(_lora.c.base_model == base_model)
        if before is not None:
            us, lid = before
            q = q.where(sa.or_(_lora.c.create_us < us, sa.and_(_lora.c.create_us == us, _lora.c.id < lid)))
        q = q.order_by(_lora.c.create_us.desc(), _lora.c.id.desc()).limit(limit)
        with self.engine.connect() as c:
            return [_row(r) for r in c.execute(q)]

    def delete(self, lora_id: str, owner_id: str) -> bool:
        with self.engine.begin() as c:
            return bool(c.execute(_lora.delete().where(_lora.c.id == lora_id, _lora.c.owner_id == owner_id)).rowcount)

    def add_checkpoint(self, job_id: str, step: int, asset_id: str, loss: float) -> None:
        try:
            with self.engine.begin() as c:
                c.execute(_checkpoint.insert().values(job_id=job_id, step=step, asset_id=asset_id, loss=loss))
        except IntegrityError:
            pass  # the same step stored again by a retry: the first one stands

    def checkpoints(self, job_id: str) -> list[Checkpoint]:
        q = _checkpoint.select().where(_checkpoint.c.job_id == job_id).order_by(_checkpoint.c.step)
        with self.engine.connect() as c:
            return [Checkpoint(int(r.step), r.asset_id, float(r.loss)) for r in c.execute(q)]

    def add_sample(self, job_id: str, step: int, asset_id: str) -> None:
        try:
            with self.engine.begin() as c:
                c.execute(_sample.insert().values(job_id=job_id, step=step, asset_id=asset_id))
        except IntegrityError:
            pass  # the same step rendered again by a retry: the first one stands

    def samples(self, job_id: str) -> list[tuple[int, str]]:
        """(step, asset id) of the job's sample clips, in step order."""
        q = _sample.select().where(_sample.c.job_id == job_id).order_by(_sample.c.step)
        with self.engine.connect() as c:
            return [(int(r.step), r.asset_id) for r in c.execute(q)]
