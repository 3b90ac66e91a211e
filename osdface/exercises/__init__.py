"""Auto-graded exercises for the tutorial notebooks (``notebooks/``).

Each ``check_<name>(fn)`` runs the student's function on seeded random cases, compares it with the library's own
implementation, prints ``✓ …`` or the first failing case, and returns a :class:`CheckResult` that is true when every
case passed (it never raises for a wrong answer or for an error inside the student's code). Help is tiered
(:mod:`._grading`): a function not written yet gets no hint unless asked; a wrong answer gets what went wrong and a
conceptual hint; ``check_<name>(fn, hint_level=2)`` adds the next step (a skeleton with blanks); ``hint_level=3`` a
full solution only where the teacher enabled it; ``hint_level=0`` no hint at all. An answer that calls the library
function it is graded against is refused ("write it yourself"); :func:`reference_functions` names them.

==========================  ========  ==========================================================
checker                      notebook  the library function it grades against
==========================  ========  ==========================================================
check_gaussian_kernel        01        osdface.data.degradations.gaussian_kernel
check_add_noise              01        osdface.data.degradations.apply_params (noise step only)
check_squared_distances      02        osdface.models.codebook.squared_distances
check_unique_codes           02        osdface.models.codebook.select_unique_codes
check_alpha_bar              03        the SD 2.1 DDIM scheduler's alphas_cumprod
check_x0_formula             03        osdface.models.one_step.x0_from_eps
check_sobel_magnitude        04        osdface.losses.sobel.sobel_magnitude
check_discriminator_loss     04        osdface.losses.gan.discriminator_loss (softplus)
check_lr_warmup              05        osdface.training.trainer.Trainer.lr_lambda
check_epoch_indices          05        osdface.training.data.EpochSampler
check_psnr                   06        osdface.eval.psnr_ssim.psnr (Y channel)
check_frechet_distance       06        osdface.eval.fid.frechet_distance
check_similarity_transform   07        osdface.faces.alignment.similarity_transform
check_invert_affine          07        osdface.faces.alignment.invert_affine
check_gan_weight_at          08        osdface.training.generator_trainer.LossTerm.weight_at
check_hf_ratio               08        osdface.eval.sharpness.hf_ratio
==========================  ========  ==========================================================
"""

from ._grading import CheckResult, Hints, full_solutions_enabled
from .alignment import check_invert_affine, check_similarity_transform
from .degradations import check_add_noise, check_gaussian_kernel
from .evaluation import check_frechet_distance, check_psnr
from .final_project import check_gan_weight_at, check_hf_ratio
from .losses import check_discriminator_loss, check_sobel_magnitude
from .one_step import check_alpha_bar, check_x0_formula
from .training import check_epoch_indices, check_lr_warmup
from .tutorial import show_row, tutorial_faces
from .vre import check_squared_distances, check_unique_codes



def reference_functions(name: str) -> tuple:
    """The library functions the exercise ``name`` (``"psnr"``, ``"hf_ratio"``, …) grades against."""
    from . import alignment, degradations, evaluation, final_project, losses, one_step, training, vre

    for module in (degradations, vre, one_step, losses, training, evaluation, alignment, final_project):
        if name in module.REFERENCES:
            return tuple(module.REFERENCES[name]())
    raise KeyError(f"no exercise named {name!r}")


__all__ = [
    "check_gaussian_kernel", "check_add_noise",
    "check_squared_distances", "check_unique_codes",
    "check_alpha_bar", "check_x0_formula",
    "check_sobel_magnitude", "check_discriminator_loss",
    "check_lr_warmup", "check_epoch_indices",
    "check_psnr", "check_frechet_distance",
    "check_similarity_transform", "check_invert_affine",
    "check_gan_weight_at", "check_hf_ratio",
    "tutorial_faces", "show_row", "CheckResult", "Hints", "reference_functions", "full_solutions_enabled",
]
