"""An exponential moving average of a module's weights (Polyak averaging).

    ema = ema_copy(model)                    # a frozen twin, same weights to start with
    ...  optimizer.step()
    ema_update_(ema, model, decay=0.999, step=n)

Averaging a generator's weights over its recent updates smooths out the oscillation of
GAN training, and samples from the average score markedly better FIDs than samples from
the last iterate (Yazici et al. 2019, "The unusual effectiveness of averaging in GAN
training"; BigGAN and StyleGAN sample from such an average).

Every floating-point entry of the state dict is averaged -- parameters and buffers
alike, so a BatchNorm's running statistics follow the averaged weights rather than the
last iterate's; integer buffers (``num_batches_tracked``) are copied.  ``step`` (the
number of updates so far) ramps the decay up as min(decay, (1 + step) / (10 + step)),
the schedule of TensorFlow's ExponentialMovingAverage, so that the average does not sit
on the random initialisation for the first ~1/(1 - decay) updates.
"""
import copy

from ...autograd import no_grad


def ema_copy(module):
    """A deep copy of ``module`` for holding the average: no gradients, eval mode."""
    twin = copy.deepcopy(module)
    for p in twin.parameters():
        p.requires_grad_(False)
    return twin.eval()


def ema_decay(decay, step=None):
    """The decay used at update number ``step`` (None: ``decay`` itself)."""
    decay = float(decay)
    if not 0.0 <= decay < 1.0:
        raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
    if step is None:
        return decay
    step = int(step)
    if step < 0:
        raise ValueError(f"EMA step must be >= 0, got {step}")
    return min(decay, (1.0 + step) / (10.0 + step))


def ema_update_(average, module, decay, step=None):
    """average <- d * average + (1 - d) * module, entry by entry of the state dict
    (integer buffers copied), with d = ``ema_decay(decay, step)``.  Returns d."""
    d = ema_decay(decay, step)
    avg = average.state_dict(keep_vars=True)
    src = module.state_dict(keep_vars=True)
    if list(avg) != list(src):
        raise ValueError("EMA: the two modules hold different state entries: "
                         f"{sorted(set(avg) ^ set(src)) or 'same names, other order'}")
    with no_grad():
        for key, a in avg.items():
            s = src[key]
            if a.shape != s.shape or a.dtype != s.dtype or a.device != s.device:
                raise ValueError(f"EMA: {key} is {a.shape} {a.dtype} on {a.device} in the "
                                 f"average but {s.shape} {s.dtype} on {s.device} in the model")
            if a.dtype.kind == "f":
                a.data *= a.data.dtype.type(d)
                a.data += a.data.dtype.type(1.0 - d) * s.data
            else:
                a.data[...] = s.data
    return d
