"""LoRAs on a warm pipeline (worker side): adapters load once per worker, by name, next to the
base weights; each generation activates its own set with its weights (`set_adapters`) or none
(`disable_lora`), so switching LoRAs between jobs never reloads the base model."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from services.inference.worker.protocol import LoraInput

__all__ = ["MAX_RESIDENT", "apply_loras"]

# Adapters kept loaded per pipeline; beyond that, those the current job does not use are dropped.
MAX_RESIDENT = 16


def _resident(pipe: Any) -> list[str]:
    adapters = pipe.get_list_adapters() if getattr(pipe, "transformer", None) is not None else {}
    return list(adapters.get("transformer", []))


def apply_loras(pipe: Any, loras: Sequence[LoraInput], folder: Path) -> None:
    resident = _resident(pipe)
    if not loras:
        if resident:
            pipe.disable_lora()
        return
    wanted = {lora.name for lora in loras}
    spare = [name for name in resident if name not in wanted]
    if len(resident) + len(wanted - set(resident)) > MAX_RESIDENT and spare:
        pipe.delete_adapters(spare)
    folder.mkdir(parents=True, exist_ok=True)
    for lora in loras:
        if lora.name in resident:
            continue
        path = folder / f"{lora.name}.safetensors"
        path.write_bytes(lora.data)
        pipe.load_lora_weights(str(path), adapter_name=lora.name)
        path.unlink(missing_ok=True)
    pipe.enable_lora()
    pipe.set_adapters([lora.name for lora in loras], [lora.weight for lora in loras])
