"""Tagging on a Dask cluster (dask.distributed, the optional extra ``seqtag[dask]``).

Two ways in:

* ``tag_batches`` runs `seqtag tag --workers N` / `--scheduler ADDRESS`: the client reads the
  input and cuts it into the same batches a single process would; each batch is one Dask task,
  tagged and formatted on a worker; the client writes the results in input order. At most
  ``window`` batches are out at once (submitted, running, or done and waiting for the ones
  before them), so memory stays bounded whatever the input's size.
* ``tag_bag`` and ``tag_dataframe``: a dask.bag of texts, or a dask.dataframe text column
  (through map_partitions), into records (-f jsonl's dicts) or columns.

The model travels as bytes (ShippedModel), so a worker on another machine needs seqtag
installed but not the model's file; each worker thread loads it once and keeps it (keyed by
the bytes' SHA-256). For the CLI the bytes ride in a worker plugin, which the scheduler also
gives to every worker that joins later (one restarted after a crash, say).

Why the output is the same bytes as one process's: a batch holds the same sentences, is tagged
by the same code (seqtag.tagging) on the same engine, which the client chooses in input order
exactly as one process does (auto's switch to Numba counts tokens: the client counts them
until its choice is settled). A worker lost mid-run has its tasks run again elsewhere by the
scheduler; each batch's result is taken once, from its own future, in order, so no line is
lost or written twice.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import tempfile
import threading
import uuid
from collections import deque
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator

from seqtag.errors import SeqtagError

if TYPE_CHECKING:
    from seqtag.model import RNNTagger

INSTALL = "pip install 'seqtag[dask]'"

try:        # the plugin's base class; without dask the module still imports (require() says so)
    from distributed.diagnostics.plugin import WorkerPlugin as _WorkerPlugin
except ImportError:
    _WorkerPlugin = object


def require() -> None:
    """Raise SeqtagError (saying how to install it) when dask.distributed is missing."""
    try:
        import dask  # noqa: F401
        import distributed  # noqa: F401
    except ImportError:
        raise SeqtagError("tagging on Dask workers needs dask and dask.distributed, which are "
                          "not installed", hint=f"install them with: {INSTALL}") from None


# -- the model, as bytes ----------------------------------------------------------------------

@dataclass(frozen=True)
class ShippedModel:
    """A model file's bytes, to be loaded where the tagging runs."""

    name: str                                 # the file it was read from (for messages)
    digest: str                               # SHA-256 of data: the workers' cache key
    data: bytes = field(repr=False)

    @classmethod
    def read(cls, path: str | os.PathLike | None = None) -> "ShippedModel":
        """The model file at ``path`` (None: the bundled model), checked here by loading it, so
        that a bad file is reported before any worker sees it."""
        from seqtag.model import RNNTagger

        if path is None:
            path = Path(__file__).parent / "data" / "default.npz"
        RNNTagger.load(path, engine="numpy")
        data = Path(path).read_bytes()
        return cls(str(path), hashlib.sha256(data).hexdigest(), data)

    def load(self, engine: str) -> "RNNTagger":
        """The model, loaded once per thread of this process (the encoder's caches are not for
        sharing between threads), tagging with ``engine``."""
        key = (threading.get_ident(), self.digest)
        model = _MODELS.get(key)
        if model is None:
            from seqtag.model import RNNTagger

            fd, tmp = tempfile.mkstemp(suffix=".npz", prefix="seqtag-model-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(self.data)
                model = RNNTagger.load(tmp, engine=engine)
            finally:
                os.unlink(tmp)
            with _LOCK:
                _MODELS[key] = model
        elif model.engine.requested != engine:
            model.use_engine(engine)
        return model


_MODELS: dict[tuple[int, str], "RNNTagger"] = {}    # (thread, digest) -> the loaded model
_SHIPPED: dict[str, ShippedModel] = {}              # digest -> model, given by ModelPlugin
_HOLDERS: dict[str, set[str]] = {}                  # digest -> the plugins (runs) using it
_LOCK = threading.Lock()


def _hold(shipped: ShippedModel, holder: str) -> None:
    with _LOCK:
        _SHIPPED[shipped.digest] = shipped
        _HOLDERS.setdefault(shipped.digest, set()).add(holder)


def _release(digest: str, holder: str) -> None:
    """The run ``holder`` is over; the model is forgotten when no other run uses it (two
    `seqtag tag --scheduler` runs of one model on one cluster)."""
    with _LOCK:
        holders = _HOLDERS.get(digest, set())
        holders.discard(holder)
        if holders:
            return
        _HOLDERS.pop(digest, None)
        _SHIPPED.pop(digest, None)
        for key in [k for k in _MODELS if k[1] == digest]:
            del _MODELS[key]


class ModelPlugin(_WorkerPlugin):
    """Gives a worker the model's bytes when it starts (and every worker that joins later);
    teardown, when the run ends, frees them."""

    def __init__(self, shipped: ShippedModel, version: str):
        self.shipped = shipped
        self.version = version
        self.name = f"seqtag-model-{shipped.digest[:16]}-{uuid.uuid4().hex[:8]}"

    def setup(self, worker=None):
        import seqtag

        # Another seqtag on a worker might tag differently: refused, not mixed into the output.
        if seqtag.__version__ != self.version:
            raise SeqtagError(f"a Dask worker runs seqtag {seqtag.__version__}, this client "
                              f"{self.version}", hint="install the same seqtag on every worker")
        _hold(self.shipped, self.name)

    def teardown(self, worker=None):
        _release(self.shipped.digest, self.name)


# -- a stream's batches, tagged on the cluster -------------------------------------------------

@dataclass
class Batch:
    """One task: a batch of a stream, cut where a single process cuts it."""

    kind: str              # "text" (raw texts) or "conll" (seqtag.corpus.Sentence objects)
    items: list
    name: str | None       # the input's name, for errors
    start: int = 0         # texts of the stream before this batch (line numbers in errors)

    def tokens(self) -> int:
        if self.kind == "conll":
            return sum(len(s.tokens) for s in self.items)
        from seqtag.tokenizer import tokenize

        return sum(len(tokenize(t)) for t in self.items)


def batches(streams: Iterable[tuple[str, Iterable, str | None]],
            batch_size: int) -> Iterator[Batch]:
    """The batches of each (kind, items, name) stream, as tag_texts and tag_sentences cut them
    (a stream's batches restart at each stream, as one process's do)."""
    from seqtag.documents import with_context
    from seqtag.tagging import _batches

    for kind, items, name in streams:
        if kind == "conll":
            # a document's codes from the whole document, here, before it is cut into
            # batches (for a model without document context they go unread)
            items = with_context(items)
        done = 0
        for chunk in _batches(items, batch_size):
            yield Batch(kind, chunk, name, done)
            done += len(chunk)


def run_batch(batch: Batch, model: "RNNTagger", options: dict,
              fmt: str | None) -> tuple[Any, SeqtagError | None]:
    """Tag one batch: (its formatted text, or with ``fmt`` None its Tagged list; the
    SeqtagError that stopped it after those, if any)."""
    from seqtag.tagging import FORMATTERS, tag_sentences, tag_texts

    opts = {**options, "batch_size": len(batch.items), "threads": 1}
    if batch.kind == "conll":
        stream = tag_sentences(model, batch.items, name=batch.name, **opts)
    else:
        stream = tag_texts(model, batch.items, name=batch.name, start=batch.start, **opts)
    out: list = []
    error = None
    try:
        out.extend(stream)
    except SeqtagError as e:
        error = e
    if fmt is None:
        return out, error
    formatter, scores = FORMATTERS[fmt], options.get("scores", False)
    return "".join(formatter(t, scores) for t in out), error


def _tag_on_worker(digest: str, batch: Batch, engine: str, options: dict, fmt: str | None):
    shipped = _SHIPPED.get(digest)
    if shipped is None:     # not expected: the plugin sets up every worker before its tasks
        raise RuntimeError(f"seqtag model {digest[:16]} was not given to this worker")
    return run_batch(batch, shipped.load(engine), options, fmt)


def tag_batches(client, shipped: ShippedModel, jobs: Iterable[Batch], *, engine: str = "auto",
                options: dict | None = None, fmt: str | None = "conll",
                window: int | None = None) -> Iterator[Any]:
    """Each batch's result (run_batch's first item) in input order, tagged on ``client``'s
    workers; a SeqtagError of the input (raised by ``jobs``) or of a batch is raised after the
    results before it, as one process would. ``window``: batches out at once (default twice
    the workers' threads, at least 4)."""
    import seqtag
    from seqtag.engines import Engine

    options = dict(options or {})
    chooser = Engine(engine)
    if window is None:
        window = max(4, 2 * sum(client.nthreads().values()))
    plugin = ModelPlugin(shipped, seqtag.__version__)
    _cluster_call(client.register_plugin, plugin, name=plugin.name)
    run, numbers = uuid.uuid4().hex[:12], itertools.count()
    pending: deque = deque()
    jobs = iter(jobs)
    input_error, exhausted = None, False

    def take(future):
        result, error = _cluster_call(future.result)
        yield result            # what the batch gave before its error, if any
        if error is not None:
            raise error

    try:
        while True:
            # What is done at the head is written before more input is read (a slow pipe).
            while pending and pending[0].done():
                yield from take(pending.popleft())
            if not exhausted and len(pending) < window:
                try:
                    batch = next(jobs)
                except StopIteration:
                    exhausted = True
                    continue
                except SeqtagError as e:    # raised after the batches before it are written
                    input_error, exhausted = e, True
                    continue
                kernels = chooser.choose(0 if chooser.settled else batch.tokens())
                pending.append(client.submit(_tag_on_worker, shipped.digest, batch, kernels,
                                             options, fmt, key=f"seqtag-{run}-{next(numbers)}",
                                             pure=False))
                continue
            if not pending:
                break
            # The oldest batch; the later ones keep running meanwhile, within the window.
            yield from take(pending.popleft())
        if input_error is not None:
            raise input_error
    finally:
        # Stopped early (an error, a reader gone): the batches still out are dropped, and the
        # workers forget the model. A cluster already gone has nothing left to free.
        try:
            client.cancel(list(pending))
            client.unregister_worker_plugin(plugin.name)
        except Exception:      # noqa: BLE001
            pass


def _cluster_call(fn, *args, **kwargs):
    """fn(...), with the cluster's own failures (a task that killed its workers again and again,
    a scheduler gone) as a SeqtagError."""
    try:
        return fn(*args, **kwargs)
    except SeqtagError:
        raise
    except Exception as e:  # noqa: BLE001 (distributed raises many kinds; each is told as is)
        from distributed import KilledWorker

        if isinstance(e, ImportError):      # raised on a worker: its environment lacks it
            raise SeqtagError(f"a Dask worker cannot import what tagging needs ({e})",
                              hint=f"install the same seqtag on every worker ({INSTALL}), "
                                   "with Numba for --engine numba or auto") from None
        if isinstance(e, KilledWorker):
            raise SeqtagError(f"a batch was lost with the Dask workers that ran it ({e})",
                              hint="see the workers' logs (memory?); the batch is retried "
                                   "up to distributed.scheduler.allowed-failures times") from None
        if isinstance(e, (OSError, TimeoutError)) or type(e).__module__.startswith(
                ("distributed", "tornado")):
            raise SeqtagError(f"the Dask cluster failed: {type(e).__name__}: {e}") from None
        raise


@contextmanager
def connect(workers: int | None = None, scheduler: str | None = None,
            timeout: float = 60.0, connect_timeout: float = 10.0) -> Iterator[Any]:
    """A dask.distributed Client: on a new LocalCluster of ``workers`` processes of one thread
    each on this machine, or on the running scheduler at ``scheduler`` (then waiting, up to
    ``timeout`` seconds, for ``workers`` workers, or for one, after up to ``connect_timeout``
    seconds to reach it). Both are closed on the way out."""
    require()
    import logging

    from distributed import Client, LocalCluster

    if scheduler is not None and not re.fullmatch(r"(?:[a-z]+://)?[^/\s]+:\d+/?", scheduler):
        # checked here: a Client given a malformed address fails only in its finaliser
        raise SeqtagError(f"--scheduler {scheduler!r} is not a scheduler's address",
                          hint="give tcp://HOST:PORT, as `dask scheduler` prints it")
    cluster = None
    try:
        if scheduler is not None:
            try:
                client = Client(scheduler, timeout=connect_timeout, set_as_default=False)
            except (OSError, TimeoutError, ValueError) as e:
                raise SeqtagError(f"cannot connect to the Dask scheduler at {scheduler} ({e})",
                                  hint="start one with `dask scheduler`, check the address "
                                       "(tcp://HOST:PORT), or use --workers N alone for a "
                                       "cluster on this machine") from None
        else:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   host="127.0.0.1", dashboard_address=":0",
                                   # the cluster's own logs would put tracebacks on stderr
                                   # (a heartbeat cut by the shutdown after an ERROR line)
                                   silence_logs=logging.CRITICAL)
            client = Client(cluster, set_as_default=False)
    except SeqtagError:
        raise
    except Exception as e:  # noqa: BLE001
        if cluster is not None:
            cluster.close()
        raise SeqtagError(f"cannot start a Dask cluster ({type(e).__name__}: {e})") from None
    try:
        if scheduler is not None:
            try:
                client.wait_for_workers(workers or 1, timeout=timeout)
            except (OSError, TimeoutError) as e:
                raise SeqtagError(f"fewer than {workers or 1} Dask workers joined the scheduler "
                                  f"at {scheduler} in {timeout:g} s ({e})",
                                  hint="start them with `dask worker " + scheduler + "`") \
                    from None
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


# -- the Python API: dask.bag and dask.dataframe -----------------------------------------------

API_OPTIONS = ("batch_size", "scores", "nbest")


def _records(texts: list, model: "RNNTagger", options: dict, where: str) -> list[dict]:
    from seqtag.tagging import record, tag_texts

    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise SeqtagError(f"{where}: item {i} of a partition is {type(t).__name__}, "
                              "not a text", hint="give strings (fill or drop missing values)")
    scores = options.get("scores", False)
    return [record(t, scores) for t in tag_texts(model, texts, threads=1, **options)]


def _tag_partition(texts, shipped: ShippedModel, engine: str, options: dict) -> list[dict]:
    return _records(list(texts), shipped.load(engine), options, "dask.bag")


def _ship(model) -> ShippedModel:
    return model if isinstance(model, ShippedModel) else ShippedModel.read(model)


def _model_arg(shipped: ShippedModel, client):
    """The model as an argument of every partition's task, sent once to each worker that
    runs one: scattered to every worker of ``client`` (or of the current Client, if any), so
    that losing one worker loses no copy; without a Client (dask's local schedulers), one key
    of the graph."""
    import dask

    if client is None:
        try:
            from distributed import default_client

            client = default_client()
        except (ImportError, ValueError):      # no Client: a local scheduler runs the graph
            client = None
    if client is not None:
        return client.scatter(shipped, broadcast=True, hash=True)
    return dask.delayed(shipped, name=f"seqtag-model-{shipped.digest[:16]}", traverse=False)


def tag_bag(texts, model=None, *, engine: str = "numpy", batch_size: int = 256,
            scores: bool = False, nbest: int = 1, client=None):
    """A dask.bag of texts -> a bag of records, one per text, in order: the dicts `seqtag tag
    -f jsonl` prints (text, tokens, labels, entities; probs with ``scores``; nbest). ``model``:
    a model file's path (None: the bundled model) or a ShippedModel. ``engine``: "numpy"
    (default: nothing to compile on the workers) or "numba". ``client``: the
    dask.distributed Client that will compute the result (default: the current one, if any),
    to which the model is sent once, ahead of the graph."""
    require()
    from seqtag.engines import check_engine

    check_engine(engine)
    shipped = _ship(model)
    options = dict(batch_size=batch_size, scores=scores, nbest=nbest)
    return texts.map_partitions(_tag_partition, _model_arg(shipped, client), engine, options)


COLUMNS = ("tokens", "labels", "entities")


def _tag_frame(df, column: str, shipped: ShippedModel, engine: str, options: dict,
               output: str, prefix: str):
    import pandas as pd

    records = _records(list(df[column]), shipped.load(engine), options,
                       f"dask.dataframe column {column!r}")
    if output == "records":
        return pd.Series(records, index=df.index, dtype=object, name=column)
    out = df.copy()
    for name in COLUMNS:
        out[prefix + name] = pd.Series([r[name] for r in records], index=df.index, dtype=object)
    return out


def tag_dataframe(df, column: str = "text", model=None, *, output: str = "columns",
                  prefix: str = "", engine: str = "numpy", batch_size: int = 256,
                  scores: bool = False, client=None):
    """Tag the texts of ``df[column]`` (a dask.dataframe) through map_partitions.
    ``output="columns"``: ``df`` with the columns tokens, labels and entities (lists, after
    ``prefix``) added; ``output="records"``: a Series of records (as tag_bag's) on df's index.
    ``model``, ``engine`` and ``client`` as for tag_bag."""
    require()
    import pandas as pd

    from seqtag.engines import check_engine

    check_engine(engine)
    if output not in ("columns", "records"):
        raise SeqtagError(f"unknown output {output!r}", hint="use columns or records")
    if column not in df.columns:
        raise SeqtagError(f"the dataframe has no column {column!r}",
                          hint=f"its columns: {', '.join(map(str, df.columns))}")
    shipped = _ship(model)
    options = dict(batch_size=batch_size, scores=scores)
    if output == "records":
        meta = pd.Series([], dtype=object, name=column)
    else:
        meta = df._meta.copy()
        for name in COLUMNS:
            meta[prefix + name] = pd.Series([], dtype=object)
    return df.map_partitions(_tag_frame, column, _model_arg(shipped, client), engine, options,
                             output, prefix, meta=meta)
