"""Dev tooling of the Viarte Studio repository, above both the SDK (``viarte``) and the services.

- :mod:`studio_dev.mesh`: the local dev runner (``viarte up|down|status``, ``python -m studio_dev.mesh``)
- :mod:`studio_dev.demo`: the end-to-end tour (``viarte demo``, ``./studio demo``)
- :mod:`studio_dev.models_pull`: downloads the served models' weights ahead of time
  (``viarte models pull``, ``python -m studio_dev.models_pull``; the deploy's ``models`` job), with
  :mod:`studio_dev.model_artifacts` for the files outside the model registry
- :mod:`studio_dev.cli`: those commands, which the ``viarte`` CLI finds through its ``viarte.cli``
  entry point group (pyproject.toml); the SDK never imports this package.

Kept import-light: the inference image ships this file with the model pull's two modules only.
"""
