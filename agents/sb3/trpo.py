"""sb3-contrib's TRPO with its actor gradients taken in one autograd call per objective.

`TRPO._compute_actor_grad` (sb3-contrib 2.x) differentiates the KL and the surrogate
objective separately for every parameter tensor, the KL with ``create_graph=True``. For
an MLP policy's handful of tensors that costs little. For a causal LM every call is a full
backward through the network, and the KL's double-backward graph is built and kept once
per tensor, so each Hessian-vector product of the conjugate-gradient solve backpropagates
through all those graphs again. On RLHF-Summarize-v0 (2-layer GPT-2, 1,536 samples) the
gradients alone took 44 s and 14.5 GB, and one TRPO iteration 13 minutes or more.

The gradients are the same however they are grouped, so `FusedGradTRPO` takes each in a
single ``torch.autograd.grad`` over all actor parameters, as TRPO implementations usually
do (Schulman et al. 2015's reference code and Spinning Up's ``flat_grad``). The parameter
selection (names without ``"value"`` whose KL gradient exists), the conjugate-gradient
solve, the line search, the critic update and every default are sb3-contrib's, untouched.
"""

from __future__ import annotations

import torch
from sb3_contrib import TRPO
from torch import nn


class FusedGradTRPO(TRPO):
    """`sb3_contrib.TRPO` whose actor gradients cost one backward each, not one per tensor."""

    def _compute_actor_grad(
        self, kl_div: torch.Tensor, policy_objective: torch.Tensor
    ) -> tuple[list[nn.Parameter], torch.Tensor, torch.Tensor, list[torch.Size]]:
        """Actor parameters, flat surrogate gradient, flat KL gradient (with its graph), shapes.

        The same values, in the same order, as ``TRPO._compute_actor_grad``.
        """
        # TRPO's rule: skip value-function parameters by name, keep those the KL depends on.
        candidates = [param for name, param in self.policy.named_parameters() if "value" not in name]
        kl_grads = torch.autograd.grad(
            kl_div, candidates, create_graph=True, retain_graph=True, allow_unused=True
        )
        used = [i for i, grad in enumerate(kl_grads) if grad is not None]
        actor_params = [candidates[i] for i in used]
        objective_grads = torch.autograd.grad(policy_objective, actor_params, retain_graph=True)
        grad_kl = torch.cat([kl_grads[i].reshape(-1) for i in used])
        objective_grad = torch.cat([grad.reshape(-1) for grad in objective_grads])
        return actor_params, objective_grad, grad_kl, [kl_grads[i].shape for i in used]


__all__ = ["FusedGradTRPO"]
