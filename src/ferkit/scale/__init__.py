"""Scale out on existing engines: batch recognition on Ray (training scales with torchrun).

Usage::

    from ferkit.scale import predict_ray, read_results
    report = predict_ray(["photos/"], "out/", workers=2)
    frame = read_results("out/")          # pandas DataFrame, one row per face
"""

from ferkit.scale.ray_predict import RayReport, predict_ray, read_results
from ferkit.scale.sources import expand_sources

__all__ = ["RayReport", "expand_sources", "predict_ray", "read_results"]
