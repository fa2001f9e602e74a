"""Start-up: what the CLI's commands import (a real process each), and the Pydantic-free value
conversion (seqtag.cli._coerce) agreeing with Typer's own, value by value."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SENTENCE = "Sam Li and Tom date on Tuesday."

# Run in a fresh interpreter: ``setup`` then the modules loaded, as JSON on the last line of
# stderr (stdout is the command's). SystemExit is how the CLI ends.
_REPORT = """
import json, sys
try:
{setup}
except SystemExit:
    pass
sys.stdout.flush()
sys.stderr.write("\\n" + json.dumps(sorted(sys.modules)) + "\\n")
"""


def modules_after(*setup: str) -> tuple[set[str], subprocess.CompletedProcess]:
    code = _REPORT.format(setup="\n".join("    " + line for line in setup))
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, cwd=ROOT)
    assert res.returncode == 0, res
    return set(json.loads(res.stderr.splitlines()[-1])), res


def loaded(modules: set[str], *packages: str) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in packages)


def bench_modules(modules: set[str]) -> list[str]:
    # bench/ is not a package: its scripts' modules are bench_*.py and _common.py.
    return sorted(m for m in modules if m.startswith(("bench", "_common")))


def test_importing_the_cli_imports_no_numpy_numba_rich_or_pydantic():
    modules, _ = modules_after("import seqtag.cli")
    assert loaded(modules, "numpy", "numba", "rich", "pydantic", "torch") == []
    modules, _ = modules_after("from seqtag.cli import app")    # every command registered
    assert loaded(modules, "numpy", "numba", "rich", "pydantic", "torch") == []
    assert "importlib.metadata" not in modules
    assert bench_modules(modules) == []


def test_help_imports_no_numpy_numba_or_pydantic():
    # rich draws the help (Typer's rich formatting): rendering is where it belongs.
    modules, res = modules_after("from seqtag.cli import main", "sys.argv = ['seqtag', '--help']",
                                 "main()")
    assert "tag" in res.stdout and "train" in res.stdout
    assert loaded(modules, "numpy", "numba", "pydantic") == []
    assert bench_modules(modules) == []


def test_loading_the_model_imports_no_numba_or_rich():
    modules, res = modules_after(
        "from seqtag.cli._app import default_model_path",
        "from seqtag.model import RNNTagger",
        "model = RNNTagger.load(default_model_path())",
        "print(model.labels)")
    assert "B-PER" in res.stdout
    assert loaded(modules, "numba", "rich", "pydantic") == []
    assert not [m for m in modules if m.startswith("seqtag.kernels")]
    assert bench_modules(modules) == []


def test_tag_into_a_pipe_imports_no_rich_or_pydantic():
    modules, res = modules_after("from seqtag.cli import main",
                                 f"sys.argv = ['seqtag', 'tag', {SENTENCE!r}]", "main()")
    assert res.stdout.splitlines()[:2] == ["Sam\tB-PER", "Li\tI-PER"], res
    # One sentence goes through the NumPy engine (--engine auto): no Numba, warm cache or not.
    assert loaded(modules, "rich", "pydantic", "numba", "llvmlite") == []
    # Only the command that runs is imported (with its options): not train's configuration.
    assert not {"seqtag.cli.train", "seqtag.config", "seqtag.cli.evaluate"} & modules
    assert "importlib.metadata" not in modules
    assert bench_modules(modules) == []


def test_an_error_is_still_drawn_by_rich():
    # The stderr console is made on first use: an ERROR line still gets through it.
    modules, res = modules_after("from seqtag.cli import main",
                                 "sys.argv = ['seqtag', 'tag', '-m', 'no-such.npz', 'x']",
                                 "main()")
    assert res.stderr.splitlines()[0].startswith("ERROR: no-such.npz: no such model file")
    assert "rich.console" in modules


def test_the_app_has_every_command_whichever_ran_first():
    code = ("import sys, typer.main\nfrom seqtag.cli import main\n"
            "sys.argv = ['seqtag', 'inspect', '--help']\n"
            "try:\n    main()\nexcept SystemExit:\n    pass\n"
            "import seqtag.cli\n"
            "sys.stderr.write(' '.join(typer.main.get_command(seqtag.cli.app).commands))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=ROOT)
    assert "Usage:" in res.stdout
    assert sorted(res.stderr.split()) == ["build-vocab", "eval", "explain", "inspect", "rank", "tag", "train"], res


def test_bench_startup_runs_without_torch_or_shared_data(tmp_path):
    res = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_startup.py"), "--runs", "1"],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res
    rows = {line.split("  ")[1].strip(): line for line in res.stdout.splitlines()
            if line.startswith("  ")}
    assert {'python -c "import numpy"', "seqtag --help", f'seqtag tag "{SENTENCE}"'} <= set(rows)
    assert "load average" in res.stdout and res.stdout.count("target ") == 2
    assert "torch" not in res.stdout + res.stderr


# -- value conversion: the fast path against Typer's own ------------------------------------------

from seqtag.cli import _coerce  # noqa: E402

# A Typer without the Pydantic layer converts by itself: nothing to compare.
needs_pydantic_typer = pytest.mark.skipif(_coerce.RuntimeParam is None,
                                          reason="this Typer converts without Pydantic")

VALUES = {
    "str": ["", "x", " a b ", "-", "ü", "--x", "\udcff"],
    "strs": [(), ("a",), ("a", "b", "-"), ["x", ""]],
    "bool": [True, False],
    "int": [0, 1, 3, 2 ** 40, -1, "0", "1", "7", "0007", "256", " 3", "3 ", "+5", "-1", "1_000",
            "1.5", "1.0", "1e3", "0x10", "x", "", "２", "nan", str(10 ** 17), str(10 ** 18),
            str(10 ** 30), "99999999999999999999"],
    "path": ["model.npz", "", "-", "/", "no/such/file", str(ROOT / "README.md"), "a\x00b"],
}


def _commands():
    import typer.main

    from seqtag.cli import app

    group = typer.main.get_command(app)
    yield "seqtag", group
    yield from group.commands.items()


def _cases():
    out = []
    if _coerce.RuntimeParam is None:
        return out
    for name, command in _commands():
        for param in command.params:
            kind = _coerce._kind(param.type_descriptor)
            if kind is not None:
                out += [pytest.param(command, param, kind, value,
                                     id=f"{name} {param.name} {value!r}")
                        for value in VALUES[kind]]
    return out


def _outcome(fn):
    try:
        value = fn()
    except Exception as e:     # noqa: BLE001  (the class and message are what is compared)
        return ("raises", type(e).__name__, str(getattr(e, "message", e)))
    return ("gives", type(value).__name__, value)


@needs_pydantic_typer
@pytest.mark.parametrize("command,param,kind,value", _cases())
def test_fast_conversion_agrees_with_typers(command, param, kind, value):
    from typer._coercion import build_runtime_param
    from typer._click import Context

    ctx = Context(command)
    fast = _coerce._Fast(param.type_descriptor, kind)
    typer_own = build_runtime_param(param.type_descriptor)
    mine = _outcome(lambda: fast.coerce(value, param=param, ctx=ctx))
    theirs = _outcome(lambda: typer_own.coerce(value, param=param, ctx=ctx))
    assert mine == theirs


@needs_pydantic_typer
def test_every_option_of_tag_is_converted_without_pydantic():
    """The tag path: each of its parameters (and the group's) has a fast converter."""
    names = {name: command for name, command in _commands()}
    for name in ("seqtag", "tag"):
        for param in names[name].params:
            assert _coerce._kind(param.type_descriptor) is not None, (name, param.name)


# -- the model file's stored entries, read whole ----------------------------------------------------

def _bundled_copy(tmp_path) -> tuple[Path, dict]:
    import shutil
    import zipfile

    from seqtag.cli._app import default_model_path

    path = tmp_path / "m.npz"
    shutil.copyfile(default_model_path(), path)
    with zipfile.ZipFile(path) as zf:
        infos = {i.filename[:-4]: i for i in zf.infolist()}
    return path, infos


def _data_start(path: Path, info) -> int:
    with open(path, "rb") as f:
        f.seek(info.header_offset + 26)
        n, m = (int.from_bytes(f.read(2), "little") for _ in range(2))
    return info.header_offset + 30 + n + m


def _patch(path: Path, offset: int, byte: bytes = b"\xff") -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        old = f.read(1)
        f.seek(offset)
        f.write(byte if byte != old else b"\x00")


def test_stored_entries_read_whole_equal_numpys_reading(tmp_path):
    import numpy as np

    from seqtag.modelfile import load_model

    path, infos = _bundled_copy(tmp_path)
    assert infos["Ex"].compress_type == 0 and infos["words"].compress_type != 0
    model = load_model(path)
    with np.load(path, allow_pickle=False) as z:
        for key, arr in model.params.items():
            assert np.array_equal(arr, z[key]) and arr.dtype == z[key].dtype, key
        assert model.vocab.words == z["words"].tobytes().decode().split("\n")


@pytest.mark.parametrize("where", ["Ex data", "Wax data", "Ex .npy header", "Ex local name"])
def test_a_damaged_stored_entry_is_one_error(tmp_path, where):
    from seqtag.errors import SeqtagError
    from seqtag.modelfile import load_model

    path, infos = _bundled_copy(tmp_path)
    key, part = where.split(" ", 1)
    info = infos[key]
    start = _data_start(path, info)
    offset = {"data": start + info.file_size // 2, ".npy header": start + 20,
              "local name": info.header_offset + 30}[part]
    _patch(path, offset, b"\x7f" if part == ".npy header" else b"\xff")
    with pytest.raises(SeqtagError) as e:
        load_model(path)
    assert e.value.path == str(path)
    if part == "data":      # the values alone changed: only the CRC tells
        assert "CRC" in str(e.value)


def test_a_model_cut_inside_a_stored_entry_is_one_error(tmp_path):
    from seqtag.errors import SeqtagError
    from seqtag.modelfile import load_model

    path, infos = _bundled_copy(tmp_path)
    data = path.read_bytes()
    # The central directory kept (as a copy cut short and patched back together would):
    # the entry's bytes end early, the next entries' read as its own.
    info = infos["Ex"]
    cut = _data_start(path, info) + info.file_size // 2
    path.write_bytes(data[:cut] + data[cut + 4096:])
    with pytest.raises(SeqtagError):
        load_model(path)


@needs_pydantic_typer
def test_a_typer_with_other_internals_keeps_its_own_conversion(monkeypatch):
    import typer.main

    from seqtag.cli import app

    def other_internals(*args, **kwargs):
        raise TypeError("RuntimeParam.__init__() got an unexpected keyword argument")

    monkeypatch.setattr(_coerce, "_Fast", other_internals)
    command = typer.main.get_command(app).commands["tag"]
    _coerce.speed_up(command.params)
    assert all(p._runtime_param is None for p in command.params)


def test_every_kernel_the_numba_engine_runs_is_cached(tmp_path):
    """A kernel Numba cannot cache (a function passed as an argument makes its caller a "dynamic
    global") is compiled again by every process: seconds of start-up on each large input and
    each training run. Numba then warns "Cannot cache compiled function"; tagging and training
    with the Numba engine, in real processes, must not."""
    tiny = ROOT / "samples" / "tiny.tsv"
    runs = [[sys.executable, "-m", "seqtag", "tag", "--engine", "numba", "--scores", "-n", "2", "-f", "jsonl",
             SENTENCE],
            [sys.executable, "-m", "seqtag", "train", str(tiny), "--epochs", "1", "--threads",
             "2", "-o", str(tmp_path / "m.npz")]]
    for cmd in runs:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
        assert res.returncode == 0, res.stderr
        assert "Cannot cache" not in res.stderr, res.stderr


def test_the_elementwise_helpers_are_cacheable(tmp_path):
    """The helpers every cell calls, compiled from nothing (an empty cache of their own): none
    may be uncacheable, or every kernel that calls it is too."""
    code = ("import numpy as np\n"
            "from seqtag.kernels import simd\n"
            "for dt in (np.float32, np.float64):\n"
            "    for exact in (False, True):\n"
            "        for f in (simd._tanh_in_place, simd._exp_in_place, simd._sigmoid_in_place):\n"
            "            f(np.ones(8, dt), exact)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=600, cwd=ROOT, env={**os.environ, "NUMBA_CACHE_DIR":
                                                     str(tmp_path)})
    assert res.returncode == 0, res.stderr
    assert "Cannot cache" not in res.stderr, res.stderr
    assert list(tmp_path.rglob("*.nbi")), "nothing was cached"


def test_a_numba_kernel_call_does_not_import_scipys_linalg_and_leaves_it_importable():
    # Numba's first kernel call imports numba.np.arraymath, which imported scipy.linalg (0.22 s)
    # only to probe for BLAS; seqtag.kernels hides it for that import alone.
    pytest.importorskip("scipy.linalg")
    modules, res = modules_after(
        "import numpy as np",
        "from seqtag.kernels.softmax import softmax_rows",
        "E = np.zeros((2, 3), np.float32)",
        "softmax_rows(E, False)",
        "assert abs(float(E.sum()) - 2.0) < 1e-5, E",
        "print('scipy.linalg' in sys.modules)",
        "import scipy.linalg.cython_blas",      # the hiding is undone: SciPy still imports
        "print('imported')")
    assert "numba.np.arraymath" in modules
    assert res.stdout.split() == ["False", "imported"]
