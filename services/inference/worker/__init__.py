"""Worker processes (cog-like split): the gRPC server never imports torch; one process per device
runs tasks from a pluggable task table and streams typed events back over a pipe."""
