"""The model engine: memory policies, model cache, pipeline runner, previews and the MP4 encoder.

Imports torch (through its submodules): load only inside worker processes, tests and benches.
"""
