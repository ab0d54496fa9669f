"""ferkit: facial expression recognition — data, training, evaluation and fast CPU inference.

Usage::

    from ferkit.data import load_dataset
    ds = load_dataset("fer2013.tar.gz")

Importing ferkit is cheap and never imports torch: training modules import it lazily.
"""

__version__ = "0.1.0"
