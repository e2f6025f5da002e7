"""Operating the workers: health, liveness, dead letters, queue state, middleware and metrics, the worker runner."""
