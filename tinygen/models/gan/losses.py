"""GAN objectives as a table: name -> (discriminator loss, generator loss).

Every function takes the discriminator's raw scores (logits for the
probabilistic losses, critic values for the Wasserstein ones) as Tensors of
shape (N,) and returns a scalar Tensor to MINIMISE.  With D(x) = sigmoid(l(x)):

  minimax          D: -log D(x) - log(1 - D(G(z)))  = softplus(-l_real) + softplus(l_fake)
                   G:  log(1 - D(G(z)))             = -softplus(l_fake)
                   (Goodfellow et al. 2014; G's gradient vanishes when D wins)
  non-saturating   D: as minimax
                   G: -log D(G(z))                  = softplus(-l_fake)
  hinge            D: relu(1 - l_real) + relu(1 + l_fake)          (Lim & Ye 2017,
                   G: -l_fake                                       Miyato et al. 2018)
  least-squares    D: 1/2 (l_real - b)^2 + 1/2 (l_fake - a)^2,  a=0, b=1
                   G: 1/2 (l_fake - c)^2,  c=1                     (Mao et al. 2017)
  wasserstein      D: l_fake - l_real,  G: -l_fake   (+ weight clipping, Arjovsky et al.)
  wgan-gp          as wasserstein, + lambda * gradient_penalty      (Gulrajani et al.)

log(1 - sigmoid(l)) = -softplus(l) and -log sigmoid(l) = softplus(-l) are the
stable forms (no log of a rounded 0).  Each D loss is the mean over the batch.
"""
from ...autograd.functional import grad as _grad
from ...autograd.tensor import Tensor
from ...backend import array_module
from ...nn import functional as F


def _mean(x):
    return x.mean()


# --- discriminator losses ---------------------------------------------------------------
def bce_d_loss(real, fake):
    return _mean(F.softplus(-real)) + _mean(F.softplus(fake))


def hinge_d_loss(real, fake):
    return _mean(F.relu(1.0 - real)) + _mean(F.relu(1.0 + fake))


def least_squares_d_loss(real, fake, a=0.0, b=1.0):
    return 0.5 * _mean((real - b) ** 2) + 0.5 * _mean((fake - a) ** 2)


def wasserstein_d_loss(real, fake):
    return _mean(fake) - _mean(real)


# --- generator losses --------------------------------------------------------------------
def minimax_g_loss(fake):
    return -_mean(F.softplus(fake))


def non_saturating_g_loss(fake):
    return _mean(F.softplus(-fake))


def hinge_g_loss(fake):
    return -_mean(fake)


def least_squares_g_loss(fake, c=1.0):
    return 0.5 * _mean((fake - c) ** 2)


wasserstein_g_loss = hinge_g_loss  # -mean critic score of the fakes


# name -> (d_loss(real_scores, fake_scores), g_loss(fake_scores))
LOSSES = {
    "minimax": (bce_d_loss, minimax_g_loss),
    "non-saturating": (bce_d_loss, non_saturating_g_loss),
    "hinge": (hinge_d_loss, hinge_g_loss),
    "least-squares": (least_squares_d_loss, least_squares_g_loss),
    "wasserstein": (wasserstein_d_loss, wasserstein_g_loss),
    "wgan-gp": (wasserstein_d_loss, wasserstein_g_loss),
}
ALIASES = {"ns": "non-saturating", "nonsaturating": "non-saturating", "lsgan": "least-squares",
           "ls": "least-squares", "wgan": "wasserstein", "wgangp": "wgan-gp"}
# Losses whose critic is kept Lipschitz by weight clipping / by the gradient penalty.
CLIPPED = {"wasserstein"}
PENALISED = {"wgan-gp"}


def canonical_loss(name):
    key = ALIASES.get(name, name)
    if key not in LOSSES:
        raise ValueError(f"unknown GAN loss {name!r}; available: {', '.join(sorted(LOSSES))} "
                         f"(aliases: {', '.join(sorted(ALIASES))})")
    return key


def interpolate(real, fake, generator):
    """x_hat = eps * real + (1 - eps) * fake, eps ~ U[0, 1] per sample (from ``generator``)."""
    eps = generator.random((real.shape[0],) + (1,) * (real.ndim - 1))
    eps = Tensor._make(eps.astype(real.dtype))
    if real.device != "cpu":
        eps = eps.to(device=real.device)
    return eps * real + (1.0 - eps) * fake


def gradient_penalty(critic, x_hat, eps=1e-12):
    """WGAN-GP's two-sided penalty ``mean_i (||grad_x critic(x_hat)_i||_2 - 1)^2``.

    ``x_hat`` is detached and made a leaf; the gradient is taken with
    ``create_graph=True`` so that backpropagating the penalty differentiates the
    critic's backward pass (a gradient of a gradient).  ``eps`` inside the square
    root keeps the norm differentiable at a zero gradient.
    """
    x_hat = x_hat.detach().requires_grad_()
    scores = critic(x_hat)
    (g,) = _grad(scores.sum(), x_hat, create_graph=True)
    norms = ((g * g).flatten(1).sum(axis=1) + eps).sqrt()
    return ((norms - 1.0) ** 2).mean()


def clip_parameters_(parameters, c):
    """Clamp every parameter into [-c, c] in place (WGAN's weight clipping)."""
    for p in parameters:
        array_module(p.data).clip(p.data, -c, c, out=p.data)
