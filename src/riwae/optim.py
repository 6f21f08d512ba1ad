"""Optimizers whose state lives on the parameters' device, so that a step reads nothing on
the host (and a CUDA graph can hold it): Burda et al.'s own Adam (their code, yburda/iwae),
offered beside torch's so that a difference from their numbers can be traced to the
optimizer, and torch's Adam, capturable on CUDA.

Burda et al.'s Adam differs from torch.optim.Adam in three ways: beta1 = 0.99; the second
moments start at ones, not zeros; epsilon is added to sqrt(v) after the bias correction is
folded into the step size: step = lr * sqrt(1 - beta2^t) / (1 - beta1^t) * m / (sqrt(v) + eps).
"""

import torch


class BurdaAdam(torch.optim.Optimizer):
    """Step counters (float64) and step sizes on the parameters' device; one foreach
    operation per part of the update for all parameters."""

    def __init__(self, params, lr: float, eps: float = 1e-4, betas=(0.99, 0.999)):
        super().__init__(params, {"lr": lr, "eps": eps, "betas": betas})

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            for p in params:
                if not self.state[p]:
                    self.state[p].update(
                        step=torch.zeros((), dtype=torch.float64, device=p.device),
                        m=torch.zeros_like(p),
                        v=torch.ones_like(p),
                    )
            states = [self.state[p] for p in params]
            grads = [p.grad for p in params]
            steps, ms, vs = ([s[key] for s in states] for key in ("step", "m", "v"))
            torch._foreach_add_(steps, 1)
            # lr * sqrt(1 - beta2^t) / (1 - beta1^t), in float64, then the parameters' dtype.
            sizes = [
                (-group["lr"] * (1 - beta2**t).sqrt() / (1 - beta1**t)).to(p.dtype)
                for t, p in zip(steps, params, strict=True)
            ]
            torch._foreach_lerp_(ms, grads, 1 - beta1)
            torch._foreach_mul_(vs, beta2)
            torch._foreach_addcmul_(vs, grads, grads, value=1 - beta2)
            denominators = torch._foreach_sqrt(vs)
            torch._foreach_add_(denominators, group["eps"])
            # p + (-size * m) / (sqrt(v) + eps), in the order of torch.addcdiv.
            updates = torch._foreach_mul(ms, sizes)
            torch._foreach_div_(updates, denominators)
            torch._foreach_add_(params, updates)

    def load_state_dict(self, state_dict: dict) -> None:
        """Moments and step counters to the parameters' device (torch's own policy would
        leave the counters where they were loaded)."""
        super().load_state_dict(state_dict)
        for p, state in self.state.items():
            if "step" in state:
                state["step"] = state["step"].to(p.device)


def make_optimizer(name: str, params, lr: float, eps: float) -> torch.optim.Optimizer:
    """``adam``: torch's Adam, capturable on CUDA (its step counters and bias corrections
    on the GPU; on the CPU, where torch offers no capturable Adam, its counters stay on the
    host, which reads them without waiting); ``burda``: Burda et al.'s (see the module's
    docstring)."""
    params = list(params)
    if name == "adam":
        cuda = params[0].device.type == "cuda"
        return torch.optim.Adam(params, lr=lr, eps=eps, capturable=cuda)
    if name == "burda":
        return BurdaAdam(params, lr=lr, eps=eps)
    raise ValueError(f"Unknown optimizer {name!r}; use adam or burda.")


def set_learning_rate(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
