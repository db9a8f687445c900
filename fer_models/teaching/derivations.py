"""The math behind the model, derived step by step and checked numerically (the Learn page and the report).

    from fer_models.teaching.derivations import check_conv, check_batchnorm, check_softmax_cross_entropy
    check_conv(1, 1, 48, 48, 64, kernel=7, stride=2, padding=3)      # formula vs nn.Conv2d
    check_batchnorm(batch=8, features=4, gamma=1.5, beta=0.2)        # analytic vs autograd vs finite differences
    check_softmax_cross_entropy(batch=4, temperature=2.0)

Every check runs in float64: analytic gradients (written out with numpy, as in the derivation) next
to PyTorch's autograd and to central finite differences with one Richardson step, so that the
finite-difference error (h^4) sits far below the 1e-8 the comparisons are held to.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from fer_models.nets.shapes import conv_output_size, naive_output_size

# (what the step says, the step in LaTeX): one list per derivation, read by the page and the report
CONV_STEPS = [
    ("A kernel of size k with dilation d covers d(k − 1) + 1 input pixels.",
     r"k_{\mathrm{eff}} = d\,(k-1) + 1"),
    ("Padding adds p pixels on each side; the kernel fits at every s-th position where it stays inside.",
     r"H_{\mathrm{out}} = \left\lfloor \frac{H + 2p - d\,(k-1) - 1}{s} \right\rfloor + 1"),
    ("The naive formula forgets the floor (fractional sizes when s does not divide) and the dilation.",
     r"H_{\mathrm{naive}} = \frac{H + 2p - (k-1)}{s}"),
]

BATCHNORM_STEPS = [
    ("Forward, over the m values of one channel in the batch (for images, m = N·H·W):",
     r"\mu = \frac{1}{m}\sum_{i=1}^{m} x_i, \quad \sigma^2 = \frac{1}{m}\sum_{i=1}^{m} (x_i-\mu)^2, \quad "
     r"\hat{x}_i = \frac{x_i-\mu}{\sqrt{\sigma^2+\epsilon}}, \quad y_i = \gamma\,\hat{x}_i + \beta"),
    ("γ and β touch every output directly:",
     r"\frac{\partial L}{\partial \beta} = \sum_{i=1}^{m} \frac{\partial L}{\partial y_i}, \quad "
     r"\frac{\partial L}{\partial \gamma} = \sum_{i=1}^{m} \frac{\partial L}{\partial y_i}\,\hat{x}_i"),
    ("Through the scale:", r"\frac{\partial L}{\partial \hat{x}_i} = \frac{\partial L}{\partial y_i}\,\gamma"),
    ("σ² reaches the loss only through every x̂ᵢ:",
     r"\frac{\partial L}{\partial \sigma^2} = \sum_{i=1}^{m} \frac{\partial L}{\partial \hat{x}_i}\,(x_i-\mu)"
     r"\cdot\left(-\frac{1}{2}\right)(\sigma^2+\epsilon)^{-3/2}"),
    ("μ reaches it through every x̂ᵢ and through σ²; the second term vanishes because the deviations sum to 0:",
     r"\frac{\partial L}{\partial \mu} = \sum_{i=1}^{m} \frac{\partial L}{\partial \hat{x}_i}\cdot"
     r"\frac{-1}{\sqrt{\sigma^2+\epsilon}} + \frac{\partial L}{\partial \sigma^2}\cdot"
     r"\frac{-2}{m}\sum_{i=1}^{m}(x_i-\mu)"),
    ("Each xᵢ reaches it through x̂ᵢ, σ² and μ:",
     r"\frac{\partial L}{\partial x_i} = \frac{\partial L}{\partial \hat{x}_i}\cdot\frac{1}{\sqrt{\sigma^2+\epsilon}}"
     r" + \frac{\partial L}{\partial \sigma^2}\cdot\frac{2(x_i-\mu)}{m}"
     r" + \frac{\partial L}{\partial \mu}\cdot\frac{1}{m}"),
    ("Collected into one line (what an efficient backward pass computes):",
     r"\frac{\partial L}{\partial x_i} = \frac{\gamma}{m\sqrt{\sigma^2+\epsilon}}"
     r"\left(m\,\frac{\partial L}{\partial y_i}"
     r" - \sum_{j=1}^{m}\frac{\partial L}{\partial y_j} - \hat{x}_i\sum_{j=1}^{m}\frac{\partial L}{\partial y_j}\,"
     r"\hat{x}_j\right)"),
]

DEGENERATE_STEPS = [
    ("If every value in the batch equals c (or the batch holds one value, m = 1):",
     r"\mu = c, \quad \sigma^2 = 0, \quad \hat{x}_i = \frac{0}{\sqrt{\epsilon}} = 0, \quad y_i = \beta"),
    ("The output carries no information about x, γ gets no gradient, and x gets one scaled by 1/√ε:",
     r"\frac{\partial L}{\partial \gamma} = 0, \quad \frac{\partial L}{\partial x_i} = "
     r"\frac{\gamma}{m\sqrt{\epsilon}}\left(m\,\frac{\partial L}{\partial y_i} - \sum_{j=1}^{m}"
     r"\frac{\partial L}{\partial y_j}\right)"),
]

SOFTMAX_STEPS = [
    ("Softmax at temperature T of the logits z (the network's seven raw class scores, its last output) and "
     "cross-entropy against a target distribution y (one-hot or soft, Σ y = 1):",
     r"p_k = \frac{e^{z_k/T}}{\sum_{j} e^{z_j/T}}, \quad L = -\sum_{k} y_k \log p_k"),
    ("The softmax Jacobian:", r"\frac{\partial p_k}{\partial z_j} = \frac{1}{T}\,p_k\,(\delta_{kj} - p_j)"),
    ("The loss's derivative in p:", r"\frac{\partial L}{\partial p_k} = -\frac{y_k}{p_k}"),
    ("Chain rule; the $p_k$ cancel and $\\sum_k y_k = 1$ leaves:",
     r"\frac{\partial L}{\partial z_j} = \sum_{k} -\frac{y_k}{p_k}\cdot\frac{1}{T}\,p_k\,(\delta_{kj}-p_j) = "
     r"\frac{1}{T}\left(p_j\sum_{k} y_k - y_j\right) = \frac{p_j - y_j}{T}"),
    ("At T = 1 this is the familiar", r"\frac{\partial L}{\partial z} = \hat{y} - y"),
]


# ---------------------------------------------------------------- convolution arithmetic


@dataclass
class ConvCheck:
    input_shape: tuple
    formula_shape: tuple
    torch_shape: tuple
    naive_hw: tuple[float, float]

    @property
    def agrees(self) -> bool:
        return self.formula_shape == self.torch_shape

    @property
    def naive_is_wrong(self) -> bool:
        return tuple(self.naive_hw) != tuple(self.formula_shape[2:])


def check_conv(batch: int, channels: int, height: int, width: int, out_channels: int, kernel: int,
               stride: int = 1, padding: int = 0, dilation: int = 1) -> ConvCheck:
    """The formula's output shape next to what nn.Conv2d really returns for that input."""
    formula = (batch, out_channels,
               conv_output_size(height, kernel, stride, padding, dilation),
               conv_output_size(width, kernel, stride, padding, dilation))
    conv = nn.Conv2d(channels, out_channels, kernel, stride=stride, padding=padding, dilation=dilation, bias=False)
    with torch.no_grad():
        # a meta tensor gives the shape without allocating or computing anything, whatever the sizes
        out = conv.to("meta")(torch.empty(batch, channels, height, width, device="meta"))
    return ConvCheck((batch, channels, height, width), formula, tuple(out.shape),
                     (naive_output_size(height, kernel, stride, padding),
                      naive_output_size(width, kernel, stride, padding)))


# ---------------------------------------------------------------- finite differences

def finite_difference(f, x: np.ndarray, h: float) -> np.ndarray:
    """∂f/∂x for scalar f by central differences with one Richardson step: (4 D(h/2) − D(h)) / 3 cancels
    the h² error term, leaving h⁴."""
    x = np.array(x, dtype=np.float64)
    grad = np.empty_like(x)
    for i in np.ndindex(x.shape):
        def central(step, i=i):
            up, down = x.copy(), x.copy()
            up[i] += step
            down[i] -= step
            return (f(up) - f(down)) / (2 * step)
        grad[i] = (4 * central(h / 2) - central(h)) / 3
    return grad


def _max_diff(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


# ---------------------------------------------------------------- batch normalisation

def batchnorm_forward(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float) -> dict:
    """x is (m, C): the m values each channel normalises over, one column per channel."""
    mu = x.mean(0)
    var = ((x - mu) ** 2).mean(0)
    x_hat = (x - mu) / np.sqrt(var + eps)
    return {"mu": mu, "var": var, "x_hat": x_hat, "y": gamma * x_hat + beta}


def batchnorm_backward(dy: np.ndarray, x: np.ndarray, gamma: np.ndarray, eps: float) -> dict:
    """The derivation's steps in order (BATCHNORM_STEPS), for upstream gradient dy = ∂L/∂y."""
    m = x.shape[0]
    f = batchnorm_forward(x, gamma, np.zeros_like(gamma), eps)
    mu, var, x_hat = f["mu"], f["var"], f["x_hat"]
    inv_std = 1 / np.sqrt(var + eps)
    d_beta = dy.sum(0)
    d_gamma = (dy * x_hat).sum(0)
    d_xhat = dy * gamma
    d_var = (d_xhat * (x - mu)).sum(0) * -0.5 * (var + eps) ** -1.5
    d_mu = (d_xhat * -inv_std).sum(0) + d_var * (-2 / m) * (x - mu).sum(0)
    d_x = d_xhat * inv_std + d_var * 2 * (x - mu) / m + d_mu / m
    compact = gamma * inv_std / m * (m * dy - dy.sum(0) - x_hat * (dy * x_hat).sum(0))
    return {"beta": d_beta, "gamma": d_gamma, "x_hat": d_xhat, "var": d_var, "mu": d_mu, "x": d_x,
            "x (one line)": compact}


@dataclass
class GradientCheck:
    """One row per quantity: the analytic gradient and its largest absolute differences to the others."""
    rows: list[dict]
    forward: dict

    @property
    def worst(self) -> float:
        return max(v for row in self.rows for k, v in row.items() if k.startswith("vs "))


def batchnorm_inputs(batch: int, features: int, seed: int = 0, constant: float | None = None) -> tuple:
    """(x, dy) for a check: x ~ N(1, 2²) or every value `constant`; dy = ∂L/∂y of L = Σ w·y with random w."""
    rng = np.random.default_rng(seed)
    x = np.full((batch, features), float(constant)) if constant is not None else rng.normal(1.0, 2.0, (batch, features))
    return x, rng.normal(size=(batch, features))


def check_batchnorm(batch: int = 8, features: int = 4, gamma: float = 1.5, beta: float = 0.2, eps: float = 1e-5,
                    seed: int = 0, constant: float | None = None) -> GradientCheck:
    """Analytic ∂L/∂(β, γ, x̂, σ², μ, x) against autograd on the same graph, against PyTorch's own
    F.batch_norm (for x, γ, β) and against finite differences, all in float64."""
    x, w = batchnorm_inputs(batch, features, seed, constant)
    g, b = np.full(features, float(gamma)), np.full(features, float(beta))
    forward = batchnorm_forward(x, g, b, eps)
    analytic = batchnorm_backward(w, x, g, eps)

    # autograd on the derivation's own graph, keeping the intermediates' gradients
    xt, gt, bt = (torch.tensor(a, requires_grad=True) for a in (x, g, b))
    mu = xt.mean(0)
    mu.retain_grad()
    var = ((xt - mu) ** 2).mean(0)
    var.retain_grad()
    x_hat = (xt - mu) / torch.sqrt(var + eps)
    x_hat.retain_grad()
    (torch.tensor(w) * (gt * x_hat + bt)).sum().backward()
    auto = {"beta": bt.grad, "gamma": gt.grad, "x_hat": x_hat.grad, "var": var.grad, "mu": mu.grad, "x": xt.grad}

    # PyTorch's batch norm layer (training mode: batch statistics, biased variance)
    xp, gp, bp = (torch.tensor(a, requires_grad=True) for a in (x, g, b))
    try:
        y_torch = F.batch_norm(xp, None, None, gp, bp, training=True, eps=eps)
        (torch.tensor(w) * y_torch).sum().backward()
        layer = {"beta": bp.grad, "gamma": gp.grad, "x": xp.grad}
    except ValueError as err:  # one value per channel: PyTorch refuses to train on it ("Expected more than 1 …")
        y_torch, layer, forward["torch_refuses"] = None, {}, str(err)

    # finite differences, each quantity treated as the free variable the derivation differentiates by
    def loss(g_=g, b_=b, var_=None, xhat_=None, dx=None, dmu=0.0):
        # x + dx and μ + dμ: the deviation from the mean is summed from its parts, because x − μ computed
        # whole loses the small step to rounding when x is large next to it (the constant batch)
        dx = np.zeros_like(x) if dx is None else dx
        dev = (x - x.mean(0)) + (dx - dx.mean(0)) - dmu
        var_ = (dev ** 2).mean(0) if var_ is None else var_
        xhat_ = dev / np.sqrt(var_ + eps) if xhat_ is None else xhat_
        return float((w * (g_ * xhat_ + b_)).sum())

    # the natural length scale of x is σ (or √ε when σ = 0): steps much smaller than it
    h = 1e-3 * float(np.sqrt(forward["var"].min() + eps))
    numeric = {
        "beta": finite_difference(lambda v: loss(b_=v), b, 1e-3),
        "gamma": finite_difference(lambda v: loss(g_=v), g, 1e-3),
        "x_hat": finite_difference(lambda v: loss(xhat_=v), forward["x_hat"], 1e-3),
        "var": finite_difference(lambda v: loss(var_=v), forward["var"], 1e-3 * float(forward["var"].min() + eps)),
        # σ² follows μ here: the derivation's ∂L/∂μ counts the path through σ² (which is 0 at the mean)
        "mu": finite_difference(lambda v: loss(dmu=v), np.zeros_like(forward["mu"]), h),
        "x": finite_difference(lambda v: loss(dx=v), np.zeros_like(x), h),
    }
    rows = []
    for name in ("beta", "gamma", "x_hat", "var", "mu", "x"):
        row = {"quantity": name, "shape": tuple(analytic[name].shape),
               "vs autograd": _max_diff(analytic[name], auto[name].detach().numpy()),
               "vs finite differences": _max_diff(analytic[name], numeric[name])}
        if name in layer:
            row["vs F.batch_norm"] = _max_diff(analytic[name], layer[name].numpy())
        rows.append(row)
    rows.append({"quantity": "x (one line)", "shape": tuple(x.shape),
                 "vs autograd": _max_diff(analytic["x (one line)"], auto["x"].numpy()),
                 "vs finite differences": _max_diff(analytic["x (one line)"], numeric["x"])})
    if y_torch is not None:
        rows.append({"quantity": "y (forward)", "shape": tuple(x.shape),
                     "vs F.batch_norm": _max_diff(forward["y"], y_torch.detach().numpy())})
    forward.update(analytic=analytic, x=x, dy=w)
    return GradientCheck(rows, forward)


# ---------------------------------------------------------------- softmax and cross-entropy

def softmax(z: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    scaled = z / temperature
    e = np.exp(scaled - scaled.max(-1, keepdims=True))  # shifting by the max changes nothing but overflow
    return e / e.sum(-1, keepdims=True)


def cross_entropy(z: np.ndarray, y: np.ndarray, temperature: float = 1.0) -> float:
    """Summed over the batch; y holds target distributions (one-hot or soft)."""
    scaled = z / temperature
    top = scaled.max(-1, keepdims=True)
    log_p = scaled - top - np.log(np.exp(scaled - top).sum(-1, keepdims=True))
    return float(-(y * log_p).sum())


def softmax_inputs(batch: int, classes: int = 7, seed: int = 0, soft: bool = False) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 2, (batch, classes))
    if soft:  # like FER+ vote shares
        y = rng.dirichlet(np.ones(classes), batch)
    else:
        y = np.eye(classes)[rng.integers(0, classes, batch)]
    return z, y


def check_softmax_cross_entropy(batch: int = 4, classes: int = 7, temperature: float = 1.0, seed: int = 0,
                                soft: bool = False) -> GradientCheck:
    """∂L/∂z = (p − y)/T against autograd through F.cross_entropy and against finite differences."""
    z, y = softmax_inputs(batch, classes, seed, soft)
    p = softmax(z, temperature)
    analytic = (p - y) / temperature
    zt = torch.tensor(z, requires_grad=True)
    F.cross_entropy(zt / temperature, torch.tensor(y), reduction="sum").backward()
    numeric = finite_difference(lambda v: cross_entropy(v, y, temperature), z, 1e-3 * temperature)
    torch_p = torch.softmax(torch.tensor(z) / temperature, -1).numpy()
    rows = [{"quantity": "z", "shape": z.shape, "vs autograd": _max_diff(analytic, zt.grad.numpy()),
             "vs finite differences": _max_diff(analytic, numeric)},
            {"quantity": "p (forward)", "shape": z.shape, "vs torch.softmax": _max_diff(p, torch_p)}]
    return GradientCheck(rows, {"z": z, "y": y, "p": p, "loss": cross_entropy(z, y, temperature),
                                "analytic": analytic})
