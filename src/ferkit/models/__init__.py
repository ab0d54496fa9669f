"""Model architectures, registered by name (needs torch: the ``[train]`` extra).

Usage::

    from ferkit.models import create_model, list_models, model_stats
    net = create_model("resnet18_fer", num_classes=8)
"""

from ferkit.models import cnn, faceapi, imagenet, inception, resnet  # noqa: F401  (modules register their models)
from ferkit.models.registry import (
    ModelStats,
    count_macs,
    create_model,
    list_models,
    model_stats,
    register_model,
)

__all__ = ["ModelStats", "count_macs", "create_model", "list_models", "model_stats", "register_model"]
