"""Find the final answer in a math solution and normalise it for comparison.

Pure string functions; nothing here evaluates text. Unicode mathematical symbols are first
spelled in ASCII/LaTeX (`normalize_unicode`: U+2212 minus, ×, ÷, √, π, ≤, superscripts,
vulgar fractions, fullwidth digits, thin spaces, ...). Extraction order for a completion:
the last braced ``\\boxed{...}`` (nested braces), else a bare ``\\boxed 5`` with an
answer-like argument, else the text after "final answer is", else the text after GSM8K's
``####``, else the last number. Normalisation turns LaTeX spellings of the same answer into
one spelling (``\\dfrac`` -> ``\\frac``, mixed numbers ``1\\frac{4}{5}`` ->
``\\frac{9}{5}``, units and ``\\text{}`` stripped, thousands commas dropped, ``$`` and
``\\left``/``\\right`` removed), so most equal answers already match as strings;
`math_equivalence` does the rest.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Optional

# Cap on the text we scan: model output is bounded by max_new_tokens anyway, this only
# keeps regexes linear-time on pathological input.
MAX_SCAN_CHARS = 100_000

_NUMBER = r"-?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?|-?\.\d+"
_NUMBER_RE = re.compile(rf"(?<![\w.])(?:{_NUMBER})(?:\s*/\s*\d+)?")


# A bare ``\boxed 5`` (TeX's one-token argument) counts only when what follows is
# answer-like: a number, ``\pi``/``\infty``, or one letter standing alone (a choice or a
# variable) -- never a word, so "I put it in \boxed as asked" is not an answer.
_BOX_RE = re.compile(r"\\(?:boxed|fbox)(?![a-zA-Z])")
_BARE_ANSWER_RE = re.compile(
    r"[ \t]*([-+]?(?:\d[\d,]*(?:\.\d+)?|\.\d+)(?:/\d+)?%?(?!\d|\.\d)"
    r"|[-+]?\\(?:pi|infty)(?![a-zA-Z])"
    r"|[A-Za-z](?=[ \t]*(?:$|[$.,;:!?)}\]\n])))"
)


def _braced_argument(text: str, i: int) -> Optional[str]:
  """The content of the balanced ``{...}`` starting at text[i], or None if unclosed."""
  depth = 0
  for j in range(i, len(text)):
    if text[j] == "{":
      depth += 1
    elif text[j] == "}":
      depth -= 1
      if depth == 0:
        return text[i + 1 : j]
  return None


def find_boxed(text: str) -> Optional[str]:
  """Content of the last non-empty ``\\boxed{...}`` / ``\\fbox{...}`` (braces balanced;
  an unclosed one is skipped); when there is none, the last bare ``\\boxed 5`` whose
  argument is answer-like (see `_BARE_ANSWER_RE`); else None. A braced box anywhere wins
  over any bare one: "\\boxed{12}. I put it in \\boxed as asked." gives "12"."""
  text = text[-MAX_SCAN_CHARS:]
  bare = None
  for match in reversed(list(_BOX_RE.finditer(text))):
    i = match.end()
    while i < len(text) and text[i] in " \t":
      i += 1
    if i < len(text) and text[i] == "{":
      content = _braced_argument(text, i)
      if content is not None and content.strip():
        return content
      continue  # unclosed or empty: try an earlier box
    if bare is None:
      rest = _BARE_ANSWER_RE.match(text, i)
      if rest:
        bare = rest.group(1)
  return bare


# Math delimiters an answer after "final answer is" may sit in; `\$` is a dollar sign.
_DELIMITED_RE = re.compile(
    r"\$\$(.+?)\$\$|\$((?:\\\$|[^$])+?)\$|\\\((.+?)\\\)|\\\[(.+?)\\\]", flags=re.DOTALL
)


def _after_final_answer(text: str) -> Optional[str]:
  matches = list(re.finditer(r"final answer is[:\s]*", text, flags=re.IGNORECASE))
  if not matches:
    return None
  tail = text[matches[-1].end() :].strip()
  delimited = _DELIMITED_RE.match(tail)  # "$\frac{1}{2}$.", "$$x$$", "$\$18.90$"
  if delimited:
    inner = next(g for g in delimited.groups() if g is not None).strip()
    if inner:
      return inner
  line = tail.split("\n", 1)[0]
  line = re.split(r"\.\s|\.$|\s(?:I hope|Hope)\b", line, maxsplit=1)[0]
  return line.strip() or None


def last_number(text: str) -> Optional[str]:
  """The last number in the text (thousands commas, decimals, 'a/b' fractions kept)."""
  found = _NUMBER_RE.findall(text[-MAX_SCAN_CHARS:])
  if not found:
    return None
  return found[-1].rstrip(",")


def extract_answer(text: str) -> Optional[str]:
  """The final answer of a model's solution (Unicode symbols already turned into their
  ASCII/LaTeX spelling by `normalize_unicode`, otherwise unnormalised); None when there
  is none."""
  if not isinstance(text, str) or not text.strip():
    return None
  text = normalize_unicode(text[-MAX_SCAN_CHARS:])
  boxed = find_boxed(text)
  if boxed is not None and boxed.strip():
    return boxed.strip()
  final = _after_final_answer(text)
  if final:
    return final
  if "####" in text:
    tail = text.rsplit("####", 1)[1].strip().split("\n", 1)[0].strip()
    if tail:
      return tail
  return last_number(text)


def gsm8k_reference(answer_field: str) -> str:
  """GSM8K's answer field ends with '#### <number>'."""
  if "####" not in answer_field:
    raise ValueError(f"GSM8K answer without '####': {answer_field[-80:]!r}")
  return answer_field.rsplit("####", 1)[1].strip()


# --------------------------------------------------------------------------- unicode

# Minus signs: U+2212 MINUS SIGN, U+2012 FIGURE DASH, U+FE63 SMALL HYPHEN-MINUS, U+FF0D
# FULLWIDTH HYPHEN-MINUS. U+2013 EN DASH is a minus too, except directly between two
# digits, where it is a range ("pages 3–5", "1990–2000") and is left as it is.
_MINUS_CHARS = "\u2212\u2012\ufe63\uff0d"
_EN_DASH_RE = re.compile(r"\u2013(?!(?<=\d\u2013)\d)")
# Symbols with a LaTeX command (Unicode Standard names; LaTeX spellings as in amsmath).
_SYMBOL_COMMANDS = {
    "\u00d7": r"\times",
    "\u00f7": r"\div",
    "\u00b7": r"\cdot",
    "\u22c5": r"\cdot",
    "\u2219": r"\cdot",
    "\u03c0": r"\pi",
    "\u221e": r"\infty",
    "\u2264": r"\le",
    "\u2266": r"\le",
    "\u2a7d": r"\le",
    "\u2265": r"\ge",
    "\u2267": r"\ge",
    "\u2a7e": r"\ge",
    "\u2260": r"\ne",
    "\u00b1": r"\pm",
    "\u2213": r"\mp",
    "\u222a": r"\cup",
    "\u2229": r"\cap",
    "\u2208": r"\in",
    "\u00b0": r"^\circ",
}
_SYMBOL_RE = re.compile("[" + "".join(_SYMBOL_COMMANDS) + "]")
_ROOTS = {"\u221a": "", "\u221b": "[3]", "\u221c": "[4]"}  # √ ∛ ∜
_SUPERSCRIPTS = dict(
    zip(
        "\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079"
        "\u207a\u207b\u207c\u207d\u207e\u207f\u2071",
        "0123456789+-=()ni",
    )
)
_SUBSCRIPTS = dict(
    zip(
        "\u2080\u2081\u2082\u2083\u2084\u2085\u2086\u2087\u2088\u2089"
        "\u208a\u208b\u208c\u208d\u208e",
        "0123456789+-=()",
    )
)
# No-break, thin and other fixed-width spaces; zero-width characters are dropped.
_SPACES = (
    "\u00a0\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u202f" "\u205f\u3000"
)
_ZERO_WIDTH_RE = re.compile("[\u200b\u200c\u200d\u2060\ufeff]")
_GROUP_SPACE_RE = re.compile(f"(?<=\\d)[{_SPACES}](?=\\d{{3}}(?!\\d))")  # "1 000 000"


def _vulgar_fraction(ch: str) -> Optional[str]:
  """``\\frac{a}{b}`` for a precomposed vulgar fraction (½ -> \\frac{1}{2}), else None."""
  parts = unicodedata.decomposition(ch).split()
  if len(parts) == 4 and parts[0] == "<fraction>" and parts[2] == "2044":
    return f"\\frac{{{chr(int(parts[1], 16))}}}{{{chr(int(parts[3], 16))}}}"
  return None


def _script_runs(s: str, table: dict, mark: str) -> str:
  return re.sub(
      "[" + "".join(table) + "]+",
      lambda m: mark + "{" + "".join(table[c] for c in m.group()) + "}",
      s,
  )


def matching_close(s: str, start: int, open_ch: str, close_ch: str) -> Optional[int]:
  """Index of the bracket closing the one at ``s[start]`` (nesting counted), else None."""
  depth = 0
  for k in range(start, len(s)):
    depth += s[k] == open_ch
    depth -= s[k] == close_ch
    if depth == 0:
      return k
  return None


def _roots(s: str) -> str:
  """√2 -> \\sqrt{2}, √(x+1) -> \\sqrt{x+1}, ∛x -> \\sqrt[3]{x}, √\\pi -> \\sqrt{\\pi}."""
  out, i = [], 0
  while i < len(s):
    ch = s[i]
    if ch not in _ROOTS:
      out.append(ch)
      i += 1
      continue
    head = "\\sqrt" + _ROOTS[ch]
    j = i + 1
    while j < len(s) and s[j] == " ":
      j += 1
    operand = None
    if j < len(s) and s[j] == "(":
      k = matching_close(s, j, "(", ")")
      if k is not None:
        operand, j = s[j + 1 : k], k + 1
    elif j < len(s) and s[j] != "{":
      match = re.compile(r"\d+(?:\.\d+)?|\\[a-zA-Z]+|[a-zA-Z]").match(s, j)
      if match:
        operand, j = match.group(), match.end()
    out.append(head + ("" if operand is None else "{" + operand + "}"))
    i = j if operand is not None else i + 1
  return "".join(out)


def normalize_unicode(text: str) -> str:
  """Unicode mathematical symbols spelled in ASCII/LaTeX; ASCII text is returned as is.

  Minus signs (U+2212 and relatives; U+2013 en dash where it is a minus) -> ``-``;
  × ÷ · ⋅ -> ``\\times \\div \\cdot``; √ ∛ ∜ -> ``\\sqrt{..}``/``\\sqrt[3]{..}``; π ∞ ±
  ≤ ≥ ≠ ∪ ∩ ∈ -> their commands; ° -> ``^\\circ``; superscript/subscript runs -> ``^{..}``
  / ``_{..}``; vulgar fractions -> ``\\frac{a}{b}`` (so 1½ is the mixed number
  ``1\\frac{1}{2}``); U+2044 fraction slash -> ``/``; fullwidth digits and letters and
  other compatibility forms by NFKC (Unicode Standard Annex #15); a no-break/thin space
  between digit groups of three is dropped ("1 000" -> "1000"), elsewhere it is a space.
  """
  if text.isascii():
    return text
  s = _ZERO_WIDTH_RE.sub("", text)
  s = _GROUP_SPACE_RE.sub("", s)
  s = re.sub(f"[{_SPACES}]", " ", s)
  s = "".join(_vulgar_fraction(c) or c if ord(c) > 127 else c for c in s)
  s = _script_runs(s, _SUPERSCRIPTS, "^")
  s = _script_runs(s, _SUBSCRIPTS, "_")
  s = unicodedata.normalize("NFKC", s).replace("\u2044", "/")
  s = re.sub(f"[{_MINUS_CHARS}]", "-", s)
  s = _EN_DASH_RE.sub("-", s)
  s = _SYMBOL_RE.sub(
      lambda m: _SYMBOL_COMMANDS[m.group()]
      + (" " if re.match(r"[a-zA-Z]", m.string[m.end() : m.end() + 1]) else ""),
      s,
  )
  return _roots(s)


# --------------------------------------------------------------------------- normalising

_UNIT_WORDS = (
    "degrees",
    "degree",
    "cm",
    "m",
    "km",
    "mm",
    "kg",
    "g",
    "s",
    "sec",
    "seconds",
    "second",
    "min",
    "minute",
    "minutes",
    "hours",
    "hour",
    "h",
    "days",
    "day",
    "years",
    "year",
    "units",
    "unit",
    "inches",
    "inch",
    "feet",
    "foot",
    "ft",
    "miles",
    "mile",
    "dollars",
    "dollar",
    "cents",
    "cent",
    "km/h",
    "mph",
    "meters",
    "meter",
    "eV",
    "K",
    "J",
    "W",
    "Hz",
    "nm",
    "angstrom",
    "angstroms",
    "parsecs",
    "parsec",
    "pc",
    "arcseconds",
    "arcsec",
    "square",
    "sq",
    "cubic",
    "points",
    "point",
    "people",
    "percent",
    "students",
    "ways",
)
_UNIT_RE = re.compile(
    r"(?<=[\d}\s])\s*(?:"
    + "|".join(re.escape(u) for u in sorted(_UNIT_WORDS, key=len, reverse=True))
    + r")(?:\^?\{?[23]\}?)?\s*$"
)


def _strip_text_commands(s: str) -> str:
  """``\\text{...}``, ``\\mathrm{...}``, ``\\textbf{...}``, ``\\mbox{...}``: units are
  dropped when they follow a value, otherwise the content is kept (e.g. ``\\text{(C)}``)."""
  pattern = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
  while True:
    match = pattern.search(s)
    if not match:
      return s
    before = s[: match.start()].strip()
    content = match.group(1)
    is_unit = bool(before) and bool(
        re.fullmatch(r"\s*~?\s*[a-zA-Z/ ]+\s*(?:\^\{?\d\}?)?\s*", content)
    )
    rest = s[match.end() :]
    if is_unit:  # "\text{ cm}^2": the power belongs to the unit
      rest = re.sub(r"^\s*\^\s*\{?\d\}?", "", rest)
    s = s[: match.start()] + ("" if is_unit else content) + rest


def _drop_thousands_commas(s: str) -> str:
  """'1,000,000' -> '1000000' when the commas group digits by three (not in tuples like
  '(1,234)' where a group could be a coordinate: only when the whole string is a number)."""
  if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", s):
    return s.replace(",", "")
  if re.fullmatch(r"-?\d{1,3}(\\!?,\d{3})+(\.\d+)?", s):  # "1{,}000" already un-braced
    return re.sub(r"\\!?,", "", s)
  return s


# A mixed number: an integer (not part of a longer number, a power or an index) right
# before a proper fraction of integers, "2\frac{1}{2}" or "2 \frac12" = 5/2. Not mixed:
# "2\cdot\frac12" (an explicit product), "x\frac{1}{2}", "10^2\frac12", "1\frac{5}{4}".
_MIXED_RE = re.compile(
    r"(?<![\w.^_}\\)])(\d+)\s*\\frac\s*(?:\{\s*(\d+)\s*\}\s*\{\s*(\d+)\s*\}|(\d)(\d))(?![\d])"
)


def _mixed_to_fraction(match: re.Match) -> str:
  whole = int(match.group(1))
  num, den = (match.group(2), match.group(3)) if match.group(2) else match.group(4, 5)
  num, den = int(num), int(den)
  if not 0 < num < den:
    return match.group()
  return f"\\frac{{{whole * den + num}}}{{{den}}}"


def normalize_mixed_numbers(s: str) -> str:
  """``1\\frac{4}{5}`` -> ``\\frac{9}{5}`` (a sign before it applies to the whole number,
  as in MATH's ``-2\\frac{1}{3}``); see `_MIXED_RE` for what is not a mixed number."""
  return _MIXED_RE.sub(_mixed_to_fraction, s) if "\\frac" in s else s


# Relations and operators written as commands: spaces around them carry no meaning
# ("x \\le 3" is "x\\le3"), except that a letter after a command stays apart from it.
_OPERATOR_RE = re.compile(
    r"\s*(\\(?:le|ge|ne|lt|gt|pm|mp|cup|cap|in|times|cdot|div)(?![a-zA-Z])|[<>])\s*"
)


def _tight_operator(match: re.Match) -> str:
  after = match.string[match.end() : match.end() + 1]
  return match.group(1) + (" " if match.group(1)[0] == "\\" and after.isalpha() else "")


def normalize_answer(answer: Optional[str]) -> str:
  """One spelling per answer; '' for None. Case is kept (variables differ by case)."""
  if answer is None:
    return ""
  s = normalize_unicode(str(answer)[:10_000]).strip()
  s = s.replace("\n", " ")
  s = re.sub(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big)(?![a-zA-Z])", "", s)
  s = (
      s.replace("\\!", "")
      .replace("\\,", "")
      .replace("\\;", "")
      .replace("\\:", "")
      .replace("\\ ", " ")
  )
  s = s.replace("\\$", "").replace("$", "")
  s = re.sub(r"\\(?:dfrac|tfrac)", r"\\frac", s)
  s = normalize_mixed_numbers(s)
  s = re.sub(r"\\(le|ge|ne)q(?:slant)?(?![a-zA-Z])", r"\\\1", s)  # \leq -> \le
  s = s.replace("{,}", ",")
  s = re.sub(r"\^\s*\{?\\circ\}?", "", s)  # degrees
  s = re.sub(r"([\^_])\{(\w)\}", r"\1\2", s)  # "x^{2}" -> "x^2", "a_{1}" -> "a_1"
  s = s.replace("\\circ", "")
  s = re.sub(r"\\?%", "%", s)
  s = _strip_text_commands(s)
  s = s.replace("~", " ")
  s = re.sub(r"\\(?:displaystyle|quad|qquad)", " ", s)
  s = s.strip()
  s = re.sub(r"^(?:the answer is|answer:)\s*", "", s, flags=re.IGNORECASE)
  s = re.sub(r"^\\?\(?\s*([A-E])\s*\\?\)?$", r"\1", s)  # "(C)" -> "C"
  s = re.sub(r"^\(\s*(-?[\d.]+)\s*\)$", r"\1", s)  # "(073)" -> "073"
  s = s.rstrip(".").strip()
  # "x = 5" -> "5" when the left side is one name (not for equations like "y = 2x + 1"
  # answers, which then compare by their right sides: a convention most graders share).
  match = re.fullmatch(r"[a-zA-Z](?:_\{?\w+\}?)?(?:\([a-z]\))?\s*=\s*(.+)", s)
  if match:
    s = match.group(1).strip()
  s = _UNIT_RE.sub("", s).strip() if re.search(r"\d", s) else s
  s = re.sub(r"\s+", " ", s)
  s = _drop_thousands_commas(s)
  s = re.sub(r"(?<=\d)\.0+$", "", s)  # "27.0" -> "27"
  s = re.sub(r"\s*([,+\-*/=^(){}\[\]])\s*", r"\1", s)  # spaces around operators
  return _OPERATOR_RE.sub(_tight_operator, s)
