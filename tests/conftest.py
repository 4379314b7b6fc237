"""Test configuration shared by the whole suite."""

import atexit
import os
import shutil
import tempfile

import pytest

# Quiet TF's C++ logs; keep JAX on the CPU even where an accelerator exists
# so that tests are deterministic and comparable.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")

# The CLI turns on JAX's persistent compilation cache (hwnas.compile_cache).
# Tests, their in-process CLI calls and the commands they start run without
# it: a program loaded from the cache is not compiled, which tests that
# count compilations would see. tests/compile_cache_test.py turns it on in
# its own processes. Should anything still turn it on, it writes into a
# folder of this pytest process, never into the user's ~/.cache/hwnas.
_CACHE = tempfile.mkdtemp(prefix="hwnas-test-cache-")
atexit.register(shutil.rmtree, _CACHE, ignore_errors=True)
os.environ["HWNAS_CACHE_DIR"] = _CACHE
os.environ["HWNAS_COMPILE_CACHE"] = "0"
for _name in ("JAX_COMPILATION_CACHE_DIR", "XDG_CACHE_HOME"):
  os.environ.pop(_name, None)


def _most_optimizations_off():
  import jax  # pylint: disable=g-import-not-at-top
  old = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)
  return lambda: jax.config.update("jax_disable_most_optimizations", old)



@pytest.fixture
def fast_compile():
  """XLA with most optimisations off: tiny nets compile for less time than
  the optimisations would save (for tests of wiring, not of speed)."""
  restore = _most_optimizations_off()
  yield
  restore()


@pytest.fixture(scope="module")
def fast_compile_module():
  """`fast_compile` for every test of a module (use with
  `pytestmark = pytest.mark.usefixtures("fast_compile_module")`)."""
  restore = _most_optimizations_off()
  yield
  restore()
