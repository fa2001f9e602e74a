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


def _stepped(threads: int, alongside):
    """Parameters after three Adam steps of fixed gradients on a pool of ``threads``."""
    from seqtag.threads import Pool

    rng = np.random.default_rng(1)
    params = {"Ex": rng.normal(size=(4, 40)).astype(np.float32, order="F"),
              "Wya": rng.normal(size=(3, 4)).astype(np.float32),
              "by": rng.normal(size=3).astype(np.float32)}
    opt = Optimizer(TrainConfig(clip=0.5), params)
    opt.pool = Pool(threads)
    results = []
    for step in range(3):
        for k, g in opt.grads.items():
            g[...] = rng.normal(size=g.shape)
        ids = rng.integers(0, 40, size=(9, 2)).astype(np.int32)
        results.append(opt.step(opt.columns(ids), 9,
                                (lambda s=step: s * 10) if alongside else None))
    opt.pool.close()
    return params, results


def test_a_job_alongside_the_step_is_returned_and_changes_no_bit_of_the_update():
    # The trainer prepares the next batch beside the update (seqtag.training.prepare): the
    # pieces then run one after the other on one thread, which must give the same bits.
    plain, none = _stepped(1, False)
    assert none == [None, None, None]
    for threads in (1, 2):
        beside, results = _stepped(threads, True)
        assert results == [0, 10, 20]
        for k in plain:
            np.testing.assert_array_equal(beside[k], plain[k], err_msg=k)
