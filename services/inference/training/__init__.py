"""LoRA training (issue 17): checks, the job handler, the worker-side trainer, the LoRA catalogue."""
