"""Processing intake: the pipeline, threading, routing, re-processing, the documentation index and training."""
