"""Scoring and loading: the detectors (a local classifier, a remote service, the micro-batcher in front of them), how
pairs become model inputs (templates, windows, batching), devices and quantization, and safe loading of pinned
model files (local, bundled in a package, or from the hub)."""
