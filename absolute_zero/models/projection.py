"""Dense projections `x @ w` whose backward suits XLA:CPU.

The weight gradient of `y = x @ w` is `x^T dy`: it contracts the token axis, the major
axis of both operands. XLA:CPU then lays the *larger* operand out transposed, a strided
copy into which it fuses the elementwise producer (e.g. the GELU backward), so that
producer is computed twice, once per layout. Transposing the smaller operand instead (an
explicit, barrier-pinned copy) turns the product into a plain row-major GEMM. Measured on
the 2-core CPU, Gemma 3 270M MLP shapes (4,096 tokens x 640 -> 2,048), forward + backward:
1,367 -> 963 ms. Other backends keep the ordinary einsum: their GEMMs take any layout.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

Array = jax.Array


@jax.custom_vjp
def _matmul(x: Array, w: Array) -> Array:
  """x [n, k] @ w [k, m] -> [n, m]."""
  return jnp.dot(x, w)


def _matmul_fwd(x, w):
  return jnp.dot(x, w), (x, w)


def _matmul_bwd(res, dy):
  x, w = res  # [n, k], [k, m]; dy [n, m]
  dx = jnp.dot(dy, w.T)  # [n, k]
  if x.shape[1] <= dy.shape[1]:
    dw = jnp.dot(jax.lax.optimization_barrier(x.T), dy)  # [k, n] @ [n, m]
  else:
    dw = jnp.dot(jax.lax.optimization_barrier(dy.T), x).T  # ([m, n] @ [n, k])^T
  return dx, dw.astype(w.dtype)


_matmul.defvjp(_matmul_fwd, _matmul_bwd)


def project(x: Array, w: Array, contract: int = 1) -> Array:
  """Contract the last `contract` axes of x with the first `contract` axes of w.

  x [..., *in], w [*in, *out] -> [..., *out] (e.g. [b, t, d] x [d, heads, hd]).
  """
  lead, inner = x.shape[:x.ndim - contract], x.shape[x.ndim - contract:]
  if tuple(w.shape[:contract]) != tuple(inner):
    raise ValueError(f"cannot contract x {x.shape} with w {w.shape} over {contract} axes")
  out = w.shape[contract:]
  if jax.default_backend() != "cpu":
    return jnp.tensordot(x, w, axes=contract)
  k = math.prod(inner)
  y = _matmul(x.reshape(-1, k), w.reshape(k, -1))  # [n, prod(out)]
  return y.reshape(lead + out)
