"""`project`: values and gradients equal NumPy products, whichever operand the weight
gradient transposes, for one and two contracted axes."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from absolute_zero.models.projection import project


def _numpy_grads(x, w, dy, contract):
  """Hand-written backward of y = x @ w with the contracted axes flattened."""
  k = int(np.prod(x.shape[x.ndim - contract :]))
  x2 = x.reshape(-1, k).astype(np.float64)
  w2 = w.reshape(k, -1).astype(np.float64)
  dy2 = dy.reshape(x2.shape[0], -1).astype(np.float64)
  return (dy2 @ w2.T).reshape(x.shape), (x2.T @ dy2).reshape(w.shape)


@pytest.mark.parametrize(
    "x_shape,w_shape,contract",
    [
        ((2, 5, 6), (6, 16), 1),  # k < m: the backward transposes x
        ((2, 5, 16), (16, 6), 1),  # k > m: the backward transposes dy
        ((2, 5, 3, 4), (6, 4), None),  # mismatched: error
        ((2, 5, 3, 4), (3, 4, 7), 2),  # [b, t, heads, hd] x [heads, hd, d]
        ((2, 5, 6), (6, 3, 4), 1),  # [b, t, d] x [d, heads, hd]
    ],
)
def test_project_matches_numpy(x_shape, w_shape, contract):
  rng = np.random.default_rng(0)
  x = rng.normal(size=x_shape).astype(np.float32)
  w = rng.normal(size=w_shape).astype(np.float32)
  if contract is None:
    with pytest.raises(ValueError, match="cannot contract"):
      project(x, w)
    return
  y = jax.jit(lambda x, w: project(x, w, contract))(x, w)
  expected = np.tensordot(x.astype(np.float64), w.astype(np.float64), axes=contract)
  np.testing.assert_allclose(np.asarray(y), expected, rtol=1e-5, atol=1e-5)

  dy = rng.normal(size=expected.shape).astype(np.float32)
  _, vjp = jax.vjp(lambda x, w: project(x, w, contract), x, w)
  dx, dw = jax.jit(vjp)(jnp.asarray(dy))
  ref_dx, ref_dw = _numpy_grads(x, w, dy, contract)
  np.testing.assert_allclose(np.asarray(dx), ref_dx, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(np.asarray(dw), ref_dw, rtol=1e-5, atol=1e-5)


def test_project_keeps_low_precision_dtypes():
  x = jnp.ones((4, 8), jnp.bfloat16)
  w = jnp.ones((8, 3), jnp.bfloat16)
  dx, dw = jax.grad(lambda x, w: jnp.sum(project(x, w).astype(jnp.float32)), argnums=(0, 1))(x, w)
  assert dx.dtype == jnp.bfloat16 and dw.dtype == jnp.bfloat16
  np.testing.assert_array_equal(np.asarray(dw, np.float32), np.full((8, 3), 4.0))
