"""Test configuration shared by the whole suite."""

import os

# Quiet TF's C++ logs; keep JAX on the CPU even where an accelerator exists
# so that tests are deterministic and comparable.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
