"""Real-ESRGAN x2 upscaling. ``runner`` (server side, no torch) drives ``worker`` (a separate
process that imports torch) which runs the project's own RRDBNet (``rrdbnet``)."""
