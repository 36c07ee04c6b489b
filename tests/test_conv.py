"""The convolutions of `sar2optical.model.conv`: every form equals XLA's, with gradients; the platform picks the form."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sar2optical.model import conv as conv_ops
from sar2optical.model import networks

#: The equal computations of the transposed conv; "dilated" (`lax.conv_transpose`, JAX's gradient) is the reference.
TRANSPOSE_FORMS = {
    "auto": conv_ops.conv_transpose4x4,  # on the CPU: matmul or subpixel by the batch's pixel count
    "matmul": lambda x, k: conv_ops._conv_transpose4x4_forms(x, k, "matmul"),
    "subpixel": lambda x, k: conv_ops._conv_transpose4x4_forms(x, k, "subpixel"),
    "dilated": conv_ops._lax_conv_transpose4x4,
    "subpixel_autodiff": conv_ops._subpixel_conv_transpose4x4,  # accelerator_form="subpixel" off the CPU
}


def _relative_error(a: jax.Array, b: jax.Array) -> float:
  return float(jnp.max(jnp.abs(a - b)) / jnp.max(jnp.abs(b)))


@pytest.mark.parametrize("shape", [(2, 5, 7, 6), (1, 1, 1, 16), (2, 2, 2, 16), (1, 8, 8, 3)])
@pytest.mark.parametrize("method", ["auto", "matmul", "subpixel", "subpixel_autodiff"])
def test_transposed_conv_forms_equal_the_dilated_one_with_gradients(shape, method):
  """Every form, and its custom gradient, equals lax.conv_transpose differentiated by JAX."""
  x = jax.random.normal(jax.random.PRNGKey(1), shape)
  variables = {"kernel": 0.02 * jax.random.normal(jax.random.PRNGKey(0), (4, 4, 8, shape[-1]))}
  apply = lambda m: lambda v, x: TRANSPOSE_FORMS[m](x, v["kernel"])
  expected, expected_vjp = jax.vjp(apply("dilated"), variables, x)
  out, vjp = jax.vjp(apply(method), variables, x)
  assert out.shape == (shape[0], 2 * shape[1], 2 * shape[2], 8)
  assert _relative_error(out, expected) < 1e-5
  cotangent = jax.random.normal(jax.random.PRNGKey(2), out.shape)
  for ours, theirs in zip(jax.tree.leaves(vjp(cotangent)), jax.tree.leaves(expected_vjp(cotangent))):
    assert _relative_error(ours, theirs) < 1e-5


@pytest.mark.parametrize("shape, features, size, stride", [
    ((2, 8, 8, 6), 8, 4, 2),     # convolution; input gradient by conv_transpose4x4
    ((2, 2, 2, 16), 32, 4, 2),   # few output pixels: product of patches, transposed product back
    ((1, 4, 4, 8), 64, 4, 2),
    ((2, 7, 7, 4), 8, 4, 1),     # stride 1: XLA's input gradient, per-tap kernel gradient
    ((2, 9, 9, 12), 3, 3, 1),    # few output channels: shifted output gradients
    ((2, 7, 7, 16), 1, 4, 1)])
def test_conv_equals_lax_conv_with_gradients(shape, features, size, stride):
  x = jax.random.normal(jax.random.PRNGKey(1), shape)
  kernel = jax.random.normal(jax.random.PRNGKey(2), (size, size, shape[-1], features))
  padding = ((1, 1), (1, 1))
  expected, expected_vjp = jax.vjp(lambda x, k: jax.lax.conv_general_dilated(
      x, k, (stride, stride), padding, dimension_numbers=("NHWC", "HWIO", "NHWC")), x, kernel)
  out, vjp = jax.vjp(lambda x, k: conv_ops.conv(x, k, stride, padding), x, kernel)
  assert _relative_error(out, expected) < 1e-5
  cotangent = jax.random.normal(jax.random.PRNGKey(3), out.shape)
  for ours, theirs in zip(vjp(cotangent), expected_vjp(cotangent)):
    assert _relative_error(ours, theirs) < 1e-5


def _mlir(fn, *args, platforms: tuple[str, ...]) -> str:
  return jax.export.export(jax.jit(fn), platforms=platforms)(*args).mlir_module()


def test_the_lowering_platform_picks_the_form_not_the_default_backend():
  """Few output pixels: XLA:CPU gets matrix products (forward, kernel gradients), CUDA XLA's convolutions."""
  x, kernel = jnp.ones((1, 2, 2, 16)), jnp.ones((4, 4, 16, 32))
  conv = lambda x, k: conv_ops.conv(x, k, 2, conv_ops.symmetric(1))
  transpose = lambda x, k: conv_ops.conv_transpose4x4(x, k)
  grads = lambda f: jax.grad(lambda x, k: jnp.sum(f(x, k) ** 2), argnums=(0, 1))
  cases = [(conv, (x, kernel)), (transpose, (x, kernel.transpose(0, 1, 3, 2)))]
  for fn, args in cases + [(grads(fn), args) for fn, args in cases]:
    cpu, cuda = _mlir(fn, *args, platforms=("cpu",)), _mlir(fn, *args, platforms=("cuda",))
    assert "dot_general" in cpu and "stablehlo.convolution" in cuda and "dot_general" not in cuda
    if fn in (conv, transpose):  # (the transposed conv's input gradient is a stride-2 convolution on both)
      assert "stablehlo.convolution" not in cpu
    both = _mlir(fn, *args, platforms=("cpu", "cuda"))
    assert "dot_general" in both and "stablehlo.convolution" in both and "_platform_index" in both


def test_forms_compile_to_the_cpu_forms_under_jit_and_vmap():
  """On the CPU the public functions are the hand-written forms: bit-equal, also batched by vmap."""
  x = jax.random.normal(jax.random.PRNGKey(1), (3, 2, 4, 4, 16))
  kernel = jax.random.normal(jax.random.PRNGKey(2), (4, 4, 16, 8))
  padding = conv_ops.symmetric(1)
  for public, cpu in [(lambda x: conv_ops.conv(x, kernel, 2, padding),
                       lambda x: conv_ops._conv_forms(x, kernel, 2, padding)),
                      (lambda x: conv_ops.conv_transpose4x4(x, kernel.transpose(0, 1, 3, 2)),
                       lambda x: conv_ops._conv_transpose4x4_forms(x, kernel.transpose(0, 1, 3, 2), "auto"))]:
    np.testing.assert_array_equal(jax.jit(public)(x[0]), jax.jit(cpu)(x[0]))
    np.testing.assert_array_equal(jax.jit(jax.vmap(public))(x), jax.jit(jax.vmap(cpu))(x))
    np.testing.assert_array_equal(jax.jit(jax.grad(lambda x: jnp.sum(public(x) ** 2)))(x[0]),
                                  jax.jit(jax.grad(lambda x: jnp.sum(cpu(x) ** 2)))(x[0]))


def test_generator_exports_for_cpu_and_cuda():
  """One artifact for both platforms (symbolic batch), forward and gradients; it runs on the CPU as in process.

  Lowering for CUDA needs no GPU. The CUDA branch holds the input-dilated transposed convolution, the CPU
  branch (symbolic batch: sub-pixel form) none.
  """
  generator = networks.UNetGenerator(levels=3)
  sar = jax.random.uniform(jax.random.PRNGKey(1), (2, 32, 32, 1), minval=-1, maxval=1)
  variables = generator.init(jax.random.PRNGKey(0), sar, train=False)
  forward = lambda v, x: generator.apply(v, x, train=False)
  gradient = jax.grad(lambda v, x: jnp.sum(forward(v, x) ** 2))
  (batch,) = jax.export.symbolic_shape("b")
  spec = jax.ShapeDtypeStruct((batch, 32, 32, 1), jnp.float32)
  for fn in (forward, gradient):
    exported = jax.export.export(jax.jit(fn), platforms=("cpu", "cuda"))(variables, spec)
    assert exported.platforms == ("cpu", "cuda")
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6),
                 exported.call(variables, sar), jax.jit(fn)(variables, sar))
  cuda = jax.export.export(jax.jit(forward), platforms=("cuda",))(variables, spec).mlir_module()
  cpu = jax.export.export(jax.jit(forward), platforms=("cpu",))(variables, spec).mlir_module()
  assert "lhs_dilate" in cuda and "lhs_dilate" not in cpu


def test_accelerator_form_subpixel_replaces_the_dilated_conv_on_cuda_only():
  """`accelerator_form="subpixel"` lowers CUDA's transposed convs as stride-1 convolutions; the CPU form stays."""
  sar = jnp.zeros((2, 4, 4, 1))
  lowered = {}
  for form in ("dilated", "subpixel"):
    generator = networks.UNetGenerator(levels=2, accelerator_form=form)
    variables = generator.init(jax.random.PRNGKey(0), sar, train=False)
    lowered[form] = {platform: _mlir(lambda v, x: generator.apply(v, x, train=False), variables, sar,
                                     platforms=(platform,)) for platform in ("cpu", "cuda")}
  assert "lhs_dilate" in lowered["dilated"]["cuda"] and "lhs_dilate" not in lowered["subpixel"]["cuda"]
  assert lowered["subpixel"]["cpu"] == lowered["dilated"]["cpu"]
