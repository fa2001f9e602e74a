"""Split raw text into PTB-style tokens with character offsets.

The bundled models are trained on the Broad Twitter Corpus and UD English-EWT, both tokenised
PTB-style, so text given to ``seqtag tag`` has to be cut the same way or the model sees words it
never met in training ("Tuesday." instead of "Tuesday" "."). Offsets let the caller map labels
back onto the original string.

Deliberate simplifications (a regex cannot know where a sentence ends):

* An abbreviation keeps its period even when it ends the sentence ("the U.S." -> "U.S.");
  PTB would add a separate "." there.
* A single capital initial keeps its period ("J. Smith"), so "Plan B." gives "B." too;
  "I." is the exception because "... did I." is far more common than the initial.
* Hyphenated words stay whole ("state-of-the-art"), as in BTC; UD EWT splits most of them.
* A run of digits joined by ``.,:/`` stays whole ("3.5", "1,000", "10:30", "12/03/2020");
  ``-`` only joins phone-number-like groups ("853-7906"), so ranges like "13-17" split.
"""

from __future__ import annotations

import re
import unicodedata
from itertools import accumulate, compress, repeat
from operator import add, not_

__all__ = ["tokenize", "tokens_and_offsets", "tokens_of"]

# Abbreviations that end in a period; kept short and case-sensitive where a lower-case
# spelling is an ordinary word ("no.", "sun."). "No." is left out: EWT
# never uses it, and "I said No." is more likely in free text than "No. 5".
_ABBREVIATIONS = (
    "Mr|Mrs|Ms|Mx|Dr|Drs|Prof|St|Sts|Mt|Jr|Sr|Capt|Col|Gen|Gov|Lt|Sgt|Sen|Rep|Rev|Fr|"
    "Inc|Corp|Ltd|LTD|Co|Bros|PVT|Pty|Ave|Blvd|Rd|Jan|Feb|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec|"
    "Tue|Tues|Thu|Thur|Thurs|Fri|Sat|Vol|PS|"
    "[Ee]tc|[Vv]s|approx|dept|est|ext|fig|vol|pp|cf|al|ect"
)
# Emoji are single pictographs plus whatever glues them into one glyph: variation selector,
# skin tone, zero-width joiner sequences, keycaps; flags are pairs of regional indicators.
_PICTO = "\u2190-\u21ff\u2300-\u23ff\u2460-\u24ff\u25a0-\u27bf\u2900-\u297f\u2b00-\u2bff\U0001f000-\U0001faff"
_EMOJI = (rf"[\U0001f1e6-\U0001f1ff]{{2}}|[#*0-9]\ufe0f?\u20e3"
          rf"|[{_PICTO}][\ufe0e\ufe0f\U0001f3fb-\U0001f3ff]*"
          rf"(?:\u200d[{_PICTO}][\ufe0e\ufe0f\U0001f3fb-\U0001f3ff]*)*")
_HYPHENATED = r"(?:-[^\W\d_]\w*(?:-\w+)*)?"  # "18,000-person" is one word
_SIGN = r"(?:(?<!\w)[-+])?"  # "-2" but "13-17" splits
# Trailing punctuation a URL gives back ("see http://x.org/a." ends with ".").
_URL_TRAIL = ".,;:!?'\"’”)]}>"

# The first alternatives of one ordered choice, tried in turn at each position; they are three
# patterns, not one, so that the two that would rescan a long run from every position of it
# (quadratic time: 25 s for a 60 KB line) are handled in linear time by tokenize() below.
_URL = re.compile(r"(?:https?://|ftp://|mailto:|www\.)\S")   # the URL's end: in tokenize()
_EMAIL = re.compile(r"\w[\w.+-]*@\w[\w-]*(?:\.\w[\w-]*)*")   # EWT has "name...@host.com"
_EMAIL_LOCAL = re.compile(r"\w[\w.+-]*")
_EMOJI_TOKEN = re.compile(_EMOJI)

_TOKEN = re.compile(rf"""
    @\w+(?:\.\w+)*                                   # @mention
  | \#(?=\w*[^\W\d_])\w+(?:['’]s)?                   # #hashtag; "#1" is a number sign
  | (?<!\w)[:;=][-o^']?[dDpP3](?!\w)|(?<![\w<])<3     # emoticons: a letter mouth needs space
  | [:;][-o^']?[()\[\]/\\|*]|(?<!\w)=[-o^']?[()\[\]/\\|*]   # around it, ":)" may touch a word
  | (?:[^\W\d_]\.){{2,}}|(?:[^\W\d_]\.)+[^\W\d_](?!\w)  # U.S. e.g. a.m. U.S
  | (?:{_ABBREVIATIONS}|[A-HJ-Z])\.(?![\w.])          # Mr. Inc. J. but "etc" "..."
  | (?i:b/c|w/o|w/)(?!\w)
  | \d{{4}}-\d\d-\d\d(?!\w)                           # ISO date
  | {_SIGN}\d+(?:[.,:/]\d+|-\d{{3,}})+{_HYPHENATED}(?![.,:/'’]?\d)  # 3.5 1,000 10:30 853-7906
  | {_SIGN}\d+{_HYPHENATED}(?![\w'’]|[.,:/]\w)       # -2 2020 3-day; "9pm" "1st" are words
  | ['’]\d\d(?!\w)                                  # '68
  | (?i:n['’]t|['’](?:s|m|d|ll|re|ve))(?!\w)         # a clitic written apart: "it 's"
  | (?P<word>\w+(?:(?:[-'’&]|\.(?=[a-z0-9]))\w+)*)  # words, hyphenated words, file.ext
  | [.!?]{{2,}}|[-=]{{2,}}|(?P<run>[^\w\s])(?P=run)+  # "...", "?!", "--", "**"
  | [^\w\s]
""", re.VERBOSE)


def _next_token(text: str, pos: int, end: int, no_email_before: list[int], emoji: bool = True,
                url: bool = True, email: bool = True) -> tuple[str, int, str | None]:
    """(token, its end, the name of the pattern's group that matched) at ``pos`` of the
    whitespace-free chunk ``text[:end]``; ``emoji``, ``url``, ``email`` false: the chunk cannot
    hold one (those patterns are not tried)."""
    if emoji:
        m = _EMOJI_TOKEN.match(text, pos, end)
        if m:
            return m.group(), m.end(), None
    m = _URL.match(text, pos, end) if url else None
    if m:
        # A URL runs to the chunk's end less its trailing punctuation (at least one character
        # after the scheme). A lazy \S+? with a lookahead for that punctuation rescanned it
        # from every position: quadratic in a URL followed by a long run of punctuation.
        scheme = m.end() - 1  # the first character after the scheme
        stop = scheme + max(1, len(text[scheme:end].rstrip(_URL_TRAIL)))
        return text[pos:stop], stop, None
    if email and pos >= no_email_before[0]:
        m = _EMAIL.match(text, pos, end)
        if m:
            return m.group(), m.end(), None
        # The attempt failed where the local part's run ends; any later start inside the same
        # run would scan to the same place and fail the same way ("a+a+a+..." rescanned).
        run = _EMAIL_LOCAL.match(text, pos, end)
        if run:
            no_email_before[0] = run.end()
    m = _TOKEN.match(text, pos, end)
    return m.group(), m.end(), m.lastgroup


# PTB splits clitics off the word they lean on; digits keep theirs ("70's" is a decade).
_CLITIC = re.compile(r"(?i)(?<=\D)(n['’]t|['’](?:s|m|d|ll|re|ve))$")
_SPLIT_WORD = re.compile(r"(?i)^(can)(not)$|^(gon|wan)(na)$|^(got)(ta)$")


def _split_word(word: str, start: int) -> list[tuple[str, int, int]]:
    m = _SPLIT_WORD.match(word)
    if m:
        head = next(g for g in m.groups() if g)
        cut = len(head)
    else:
        m = _CLITIC.search(word)
        cut = m.start() if m and m.start() > 0 else len(word)
    pieces = [(word[:cut], start, start + cut)]
    if cut < len(word):
        pieces.append((word[cut:], start + cut, start + len(word)))
    return pieces


def _is_mark(char: str) -> bool:
    return unicodedata.category(char).startswith("M")


# Whitespace-free chunks that are one token whatever the patterns say, with no need to run them:
# one character (every pattern takes at least one, and a chunk's first character cannot glue to
# the token before, which ends at whitespace), or a run of ASCII letters and digits (only the
# word pattern and the bare-number pattern match it, each to its end) unless _SPLIT_WORD cuts it.
# Most tokens of running text are such chunks; tests check the shortcut against the patterns.
_SPLIT_WORDS = frozenset({"cannot", "gonna", "wanna", "gotta"})
_CHUNKS = re.compile(r"\S+")


def _one_token(chunk: str) -> bool:
    return len(chunk) == 1 or (chunk.isascii() and chunk.isalnum()
                               and chunk.lower() not in _SPLIT_WORDS)


def tokens_and_offsets(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """``tokenize`` as two lists: the tokens, and the (start, end) of each."""
    lowered = text.lower()
    if not text.isascii() or any(w in lowered for w in _SPLIT_WORDS):
        triples = _tokenize(text)
        return [w for w, _, _ in triples], [(a, b) for _, a, b in triples]
    words = text.split()
    if text == " ".join(words):
        # single spaces: the offsets from the lengths, without a Python step per token
        lengths = list(map(len, words))
        starts = list(accumulate(map(add, lengths, repeat(1)), initial=0))
        del starts[-1]
        spans = list(zip(starts, map(add, starts, lengths)))
    else:
        spans = [m.span() for m in _CHUNKS.finditer(text)]
    # The chunks _one_token would not pass (in an ASCII line without the words _SPLIT_WORD
    # cuts: two or more characters, not all letters and digits) are cut by the patterns, each
    # on its own (a token never spans whitespace), from the last so that those before keep
    # their index; the others (most of running text) are tokens as str.split gives them.
    for i in reversed(list(compress(range(len(words)), map(not_, map(str.isalnum, words))))):
        if len(words[i]) > 1:
            a, b = spans[i]
            pieces = _chunk_tokens(text, a, b)
            words[i:i + 1] = [w for w, _, _ in pieces]
            spans[i:i + 1] = [(a, b) for _, a, b in pieces]
    return words, spans


def tokens_of(text: str) -> list[str]:
    """The tokens of ``tokenize`` alone (no offsets to compute): as tokens_and_offsets, with
    each chunk the patterns cut taken on its own. That gives the same tokens: the patterns look
    behind a chunk's start only for a word character or '<', never whitespace, and ahead no
    further than its end."""
    lowered = text.lower()
    if not text.isascii() or any(w in lowered for w in _SPLIT_WORDS):
        return [w for w, _, _ in _tokenize(text)]
    words = text.split()
    for i in reversed(list(compress(range(len(words)), map(not_, map(str.isalnum, words))))):
        word = words[i]
        if len(word) > 1:
            words[i:i + 1] = [w for w, _, _ in _chunk_tokens(word, 0, len(word))]
    return words


def tokenize(text: str) -> list[tuple[str, int, int]]:
    """Return ``(token, start, end)`` triples with ``text[start:end] == token``."""
    words, spans = tokens_and_offsets(text)
    return [(w, a, b) for w, (a, b) in zip(words, spans)]


def _chunk_tokens(text: str, pos: int, end: int, skip: bool = True
                  ) -> list[tuple[str, int, int]]:
    """The tokens of the whitespace-free chunk text[pos:end], by the patterns."""
    tokens: list[tuple[str | None, int, int]] = []
    glued = False
    no_email_before = [pos]
    # Patterns the chunk cannot match are not tried (all are without ``skip``: the reference):
    # an emoji has a character beyond ASCII, a URL a ':' or 'www.', an e-mail address an '@'.
    chunk = text[pos:end]
    emoji, url, email = (not chunk.isascii(), ":" in chunk or "www." in chunk, "@" in chunk) \
        if skip else (True, True, True)
    while pos < end:
        tok, stop, kind = _next_token(text, pos, end, no_email_before, emoji, url, email)
        # \w excludes combining marks (Indic vowel signs, virama), so glue them back; the
        # glued token's text is cut once at the end (appending to it would copy it each time).
        if tokens and tokens[-1][2] == pos and (_is_mark(tok[0]) or (
                _is_mark(text[pos - 1]) and kind == "word")):
            tokens[-1] = (None, tokens[-1][1], stop)
            glued = True
        elif kind == "word":
            tokens.extend(_split_word(tok, pos))
        else:
            tokens.append((tok, pos, stop))
        pos = stop
    if glued:
        tokens = [(text[a:b] if tok is None else tok, a, b) for tok, a, b in tokens]
    return tokens


def _tokenize(text: str) -> list[tuple[str, int, int]]:
    """tokenize, chunk by chunk through _one_token, every other chunk through all the patterns
    (the reference tests compare with). A chunk's tokens never glue to the previous chunk's:
    whitespace lies between them."""
    tokens: list[tuple[str, int, int]] = []
    for chunk in _CHUNKS.finditer(text):
        pos, end = chunk.span()
        word = chunk.group()
        if _one_token(word):
            tokens.append((word, pos, end))
        else:
            tokens += _chunk_tokens(text, pos, end, skip=False)
    return tokens
