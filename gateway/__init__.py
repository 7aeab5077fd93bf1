"""The browser-facing gateway: Envoy (gRPC-Web → gRPC) config and launcher, and the editor build.

Import the submodules directly (``gateway.config``, ``gateway.envoy_config``, ``gateway.envoy``):
this package stays import-free so the deploy image can ship only the config generator.
"""
