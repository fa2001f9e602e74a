"""seqtag explain: which input tokens, and which of their parts, made a label."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import typer

from seqtag.cli._app import app, default_model_path, fail, user_errors


@app.command("explain")
def explain_cmd(
    inputs: Optional[List[str]] = typer.Argument(
        None, help="Texts to explain (or, with --input-format conll, column files); '-' or "
                   "nothing reads stdin."),
    model_path: Optional[Path] = typer.Option(None, "-m", "--model", help="Model file.",
                                              show_default="the bundled model"),
    input_format: str = typer.Option("text", "--input-format",
                                     help="text (one per line) or conll (columns)."),
    token: Optional[int] = typer.Option(None, "--token", min=1,
                                        help="Explain the label of this token (from 1)."),
    entity: Optional[int] = typer.Option(None, "--entity", min=1,
                                         help="Explain this entity only (from 1, in order)."),
    top: int = typer.Option(5, "--top", min=1, help="Tokens listed per explanation."),
    fmt: Optional[str] = typer.Option(
        None, "--format", "-f",
        help="text (a ranked list; colours on a terminal) or jsonl (one explanation a line).",
        show_default="text"),
) -> None:
    """For each entity (or the chosen token), the input tokens that drove its label and the
    share of each part (word, each feature, spelling): gradient × input of the label's
    log-probability, backpropagated through time."""
    with user_errors():
        if input_format not in ("text", "conll"):
            fail(f"unknown --input-format {input_format!r} (use text or conll)")
        fmt = fmt or "text"
        if fmt not in ("text", "jsonl"):
            fail(f"unknown --format {fmt!r} (use text or jsonl)")
        if token is not None and entity is not None:
            fail("--token and --entity choose different targets (give one)")
        from seqtag.explain import Explainer
        from seqtag.model import RNNTagger
        from seqtag.tagging import read_texts
        from seqtag.tokenizer import tokenize

        model = RNNTagger.load(model_path or default_model_path(), engine="numba")
        try:
            explainer = Explainer(model)
        except ValueError as e:
            fail(str(e))
        inputs = inputs or ["-"]

        def sentences():
            if input_format == "conll":
                from seqtag.corpus import read_sentences

                for path in inputs:
                    for s in read_sentences(path, labels="auto", check_labels=False):
                        yield s.tokens, path, s.line_no
                return
            texts = [t for t in inputs if t != "-"]
            for n, text in enumerate(texts, 1):
                yield [w for w, _, _ in tokenize(text)], "<argument>", n
            if "-" in inputs:
                for n, text in enumerate(read_texts("-"), 1):
                    yield [w for w, _, _ in tokenize(text)], "<stdin>", n

        console = None
        if fmt == "text":
            from rich.console import Console

            console = Console(highlight=False, soft_wrap=True)
        for tokens, name, line in sentences():
            if not tokens:
                continue
            if token is not None and token > len(tokens):
                fail(f"{name}:{line}: --token {token}, but the sentence has {len(tokens)} tokens")
            try:
                found = explainer.explain(tokens, token=None if token is None else token - 1,
                                          entity=None if entity is None else entity - 1)
            except IndexError:
                from seqtag.schemes import spans

                n = len(spans(model.predict([tokens])[0]))
                fail(f"{name}:{line}: --entity {entity}, but the model finds {n} entities there "
                     "(drop --entity to explain each)")
            if fmt == "jsonl":
                for e in found:
                    sys.stdout.write(json.dumps(e.as_json(top), ensure_ascii=False) + "\n")
            else:
                if not found:
                    console.print(f"no entity found in: {' '.join(tokens)} (use --token N to "
                                  "explain one token's label)", markup=False)
                for e in found:
                    _render(e, top, console)
        sys.stdout.flush()


def _render(e, top: int, console) -> None:
    """The sentence with each token coloured by its attribution (green for, red against), then
    the ranked list with each part's share."""
    from rich.text import Text

    t = e.target
    where = f"tokens {t['start'] + 1}-{t['end']}" if t["end"] - t["start"] > 1 else \
        f"token {t['start'] + 1}"
    console.print(Text.assemble((t["text"], "bold"), f"  {t['label']}  p={e.prob:.3f}  ({where})"))
    scale = max(abs(e.total).max(), 1e-12)
    line = Text("  ")
    for i, tok in enumerate(e.tokens):
        share = e.total[i] / scale
        style = ("green" if share > 0 else "red") + (" bold" if abs(share) > 0.5 else "")
        if t["start"] <= i < t["end"]:
            style += " underline"
        line.append(tok, style=style if abs(share) > 0.1 else ("underline" if t["start"] <= i
                                                              < t["end"] else ""))
        line.append(" ")
    console.print(line)
    for r in e.ranked(top):
        parts = ", ".join(f"{k} {v:+.3f}" for k, v in
                          sorted(r["parts"].items(), key=lambda kv: -abs(kv[1]))[:4])
        console.print(f"  {r['index'] + 1:>3} {r['token']:<15} {r['total']:+.3f}   ({parts})",
                      markup=False)
