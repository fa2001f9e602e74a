"""seqtag.optim: the optimizer's bookkeeping around the kernels (tests/test_kernels_optim.py
checks the steps themselves against NumPy)."""

import numpy as np

from seqtag.config import TrainConfig
from seqtag.optim import Optimizer


def test_columns_are_np_unique_of_the_ids_batch_after_batch():
    V = 50
    params = {"Ex": np.zeros((4, V), np.float32, order="F"),
              "Wya": np.zeros((3, 4), np.float32), "by": np.zeros(3, np.float32)}
    opt = Optimizer(TrainConfig(), params)
    rng = np.random.default_rng(0)
    batches = [rng.integers(0, V, size=(n, k)).astype(np.int32)
               for n, k in ((30, 3), (1, 1), (200, 7), (5, 2))]
    batches.append(np.array([[0, V - 1], [V - 1, 0]], np.int32))      # both ends, repeated
    batches.append(batches[2][:, :1])                                 # a column view
    for ids in batches:      # each call must leave the table of marks clean for the next
        cols = opt.columns(ids)
        np.testing.assert_array_equal(cols, np.unique(ids))
        assert cols.dtype == ids.dtype
    assert not opt._seen.any()
