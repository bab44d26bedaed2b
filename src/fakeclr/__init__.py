"""fakeclr: data-efficient GAN training with FakeCLR (Li et al., ECCV 2022) and its baselines, in pure PyTorch."""

__version__ = "0.1.0"
