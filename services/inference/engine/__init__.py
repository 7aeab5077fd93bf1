"""The model engine: memory policies, model cache, diffusion (denoise, decode), previews, MP4 encoder.

Imports torch (through its submodules): load only inside worker processes, tests and benches.
"""
