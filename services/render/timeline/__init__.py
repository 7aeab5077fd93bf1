"""Timeline engine: validation (``validate``), the frame-quantised plan (``plan``), and the
compiler to one ffmpeg filter graph (``compile``)."""
