"""Weights from other toolkits' files (no TensorFlow needed): TF.js weights manifests and the
face-api expression network built on them."""
