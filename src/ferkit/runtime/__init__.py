"""Inference runtime: numpy + OpenCV + ONNX Runtime only (no torch)."""
