"""Worker processes (cog-like split): the gRPC server never imports torch; one process per device
runs typed work (`protocol.Work`) with its work functions and streams typed events back over a pipe."""
