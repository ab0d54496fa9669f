"""CycleGAN between expression classes: make synthetic faces of a rare class (disgust).

Usage::

    from ferkit.gan import gan_config, train_cyclegan, generate
    result = train_cyclegan(gan_config(data="fer2013.tar.gz", epochs=20))
    generate(result.run_dir, n=3000, out="synthetic.npz")
"""

from ferkit.gan.generate import GenerateResult, generate, load_generator
from ferkit.gan.networks import CycleGan, ImagePool, PatchDiscriminator, ResnetGenerator
from ferkit.gan.train import GanConfig, GanResult, gan_config, train_cyclegan, train_step

__all__ = [
    "CycleGan",
    "GanConfig",
    "GanResult",
    "GenerateResult",
    "ImagePool",
    "PatchDiscriminator",
    "ResnetGenerator",
    "gan_config",
    "generate",
    "load_generator",
    "train_cyclegan",
    "train_step",
]
