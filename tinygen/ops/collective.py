"""Collective family: ``all_reduce``, a sum over the ranks of a distributed job.

``y = all_reduce(x, comm)`` gives every rank the sum of all ranks' ``x``.  Seen as
one function of all ranks' inputs, rank r's output depends on every rank's input with
Jacobian identity, so the vector-Jacobian product is again a sum over ranks:
``dL/dx_r = sum_s dL/dy_s``.  The backward is therefore ``all_reduce`` of the incoming
gradient -- written with the op itself, so it is differentiable to any order (sync
batch norm under WGAN-GP's double backward).  ``comm`` is any tinygen.distributed
communicator (duck-typed: ``allreduce_(array)``); ops do not import that package.
"""
from ..autograd.function import Function


class AllReduceSum(Function):
    def forward(self, x, comm):
        self.comm = comm
        # a fresh C-contiguous buffer, which MPI or NCCL reduces in place
        return comm.allreduce_(x.copy(order="C"))

    def backward(self, grad):
        return AllReduceSum.apply(grad, comm=self.comm)


def all_reduce(x, comm):
    """The sum of ``x`` over every rank of ``comm`` (differentiable)."""
    return AllReduceSum.apply(x, comm=comm)
