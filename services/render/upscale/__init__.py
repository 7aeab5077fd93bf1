"""Real-ESRGAN x2 upscaling. ``pool`` (server side, no torch) hands ``work`` (the typed job, torch-free)
to ``worker`` (a separate process that imports torch) which runs the project's own RRDBNet (``rrdbnet``)."""
