"""Training of both OSDFace stages (never released by the authors), plus stage 0 for presets without an SD base.

- :mod:`~osdface.training.config`: dataclass configs and YAML (the recipes are in :data:`osdface.configs.PRESETS`).
- :mod:`~osdface.training.trainer`: the base :class:`Trainer` (accelerate, checkpoints/resume, logs, validation).
- :mod:`~osdface.training.vae_trainer` (stage 0), :mod:`~osdface.training.vre_trainer` (stage 1),
  :mod:`~osdface.training.generator_trainer` (stage 2).
"""

from .config import GeneratorTrainConfig, TrainConfig, VAETrainConfig, VRETrainConfig, get_train_config


def make_trainer(cfg: TrainConfig, **kwargs):
    """The trainer of a config's stage."""
    if isinstance(cfg, VAETrainConfig):
        from .vae_trainer import VAETrainer
        return VAETrainer(cfg, **kwargs)
    if isinstance(cfg, VRETrainConfig):
        from .vre_trainer import VRETrainer
        return VRETrainer(cfg, **kwargs)
    if isinstance(cfg, GeneratorTrainConfig):
        from .generator_trainer import GeneratorTrainer
        return GeneratorTrainer(cfg, **kwargs)
    raise TypeError(f"no trainer for {type(cfg).__name__}")


__all__ = ["TrainConfig", "VAETrainConfig", "VRETrainConfig", "GeneratorTrainConfig", "get_train_config",
           "make_trainer"]
