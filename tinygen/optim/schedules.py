"""Learning-rate schedules by optimizer step, one set for every model family's recipe.

With ``t = min(1, step / decay_steps)``:

    constant   lr
    cosine     lr_min + (lr - lr_min) (1 + cos(pi t)) / 2     (SGDR without restarts)
    linear     lr + (lr_min - lr) t                           (WGAN-GP's decay, Gulrajani
                                                               et al. 2017: to 0 over the
                                                               generator's iterations)

A schedule is a function of the step count, which checkpoints hold, so ``--resume``
continues it; ``--init-from`` starts the count (and so the schedule) afresh.
"""
import math

SCHEDULES = ("constant", "cosine", "linear")


def check_schedule(schedule, decay_steps, hint=""):
    """A clear error for an unknown schedule, or a decaying one without its length."""
    if schedule not in SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    if schedule != "constant" and int(decay_steps) < 1:
        raise ValueError(f"lr_schedule={schedule} needs lr_decay_steps >= 1 (optimizer steps"
                         f"{'; ' + hint if hint else ''})")


def scheduled_lr(schedule, lr, lr_min, decay_steps, step):
    """The learning rate at optimizer step ``step`` (0 for the first)."""
    if schedule == "constant":
        return float(lr)
    t = min(1.0, max(0, step) / int(decay_steps))
    if schedule == "cosine":
        return float(lr_min) + (float(lr) - float(lr_min)) * 0.5 * (1 + math.cos(math.pi * t))
    if schedule == "linear":
        return float(lr) + (float(lr_min) - float(lr)) * t
    raise ValueError(f"lr_schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")


def set_lr(optimizer, lr):
    """Every parameter group of ``optimizer`` at ``lr``."""
    for group in optimizer.param_groups:
        group["lr"] = lr
