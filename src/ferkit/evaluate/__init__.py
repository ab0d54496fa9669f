"""Evaluation: metrics, confusion matrices, TTA and ensembles (numpy + ONNX Runtime)."""
