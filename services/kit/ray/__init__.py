"""Ray plumbing shared by the services' Ray executors (issue 15). Import the submodules only when a
service's executor is "ray": ``actors`` imports ray (never torch); ``task`` is what actors run."""
