"""Burda et al.'s own Adam (their code, yburda/iwae), offered beside torch's so that a
difference from their numbers can be traced to the optimizer.

It differs from torch.optim.Adam in three ways: beta1 = 0.99; the second moments start at
ones, not zeros; epsilon is added to sqrt(v) after the bias correction is folded into the
step size: step = lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps).
"""

import torch


class BurdaAdam(torch.optim.Optimizer):
    def __init__(self, params, lr: float, eps: float = 1e-4, betas=(0.99, 0.999)):
        super().__init__(params, {"lr": lr, "eps": eps, "betas": betas})

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float64)
                    state["m"] = torch.zeros_like(p)
                    state["v"] = torch.ones_like(p)
                state["step"] += 1
                t = float(state["step"])
                state["m"].lerp_(p.grad, 1 - beta1)
                state["v"].mul_(beta2).addcmul_(p.grad, p.grad, value=1 - beta2)
                size = group["lr"] * (1 - beta2**t) ** 0.5 / (1 - beta1**t)
                p.addcdiv_(state["m"], state["v"].sqrt().add_(group["eps"]), value=-size)


def make_optimizer(name: str, params, lr: float, eps: float) -> torch.optim.Optimizer:
    """``adam``: torch's Adam; ``burda``: Burda et al.'s (see the module's docstring)."""
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, eps=eps)
    if name == "burda":
        return BurdaAdam(params, lr=lr, eps=eps)
    raise ValueError(f"Unknown optimizer {name!r}; use adam or burda.")
