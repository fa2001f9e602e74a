"""fast_tanh and fast_exp, the float32 approximations the kernels vectorise, against NumPy."""

import numpy as np

from seqtag.kernels.simd import exp_array, tanh_array


def test_fast_tanh_is_within_1e6_of_tanh():
    x = np.linspace(-20, 20, 400_001).astype(np.float32)
    err = np.abs(tanh_array(x).astype(np.float64) - np.tanh(x.astype(np.float64)))
    assert err.max() < 1e-6


def test_fast_exp_relative_error():
    x = np.linspace(-87, 88, 400_001).astype(np.float32)
    ref = np.exp(x.astype(np.float64))
    rel = np.abs(exp_array(x).astype(np.float64) - ref) / ref
    assert rel.max() < 1e-6
