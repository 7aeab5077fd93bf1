"""Render service: timelines → MP4 through one ffmpeg filter graph, Real-ESRGAN upscaling, projects."""
