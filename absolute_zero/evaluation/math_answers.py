"""Find the final answer in a math solution and normalise it for comparison.

Pure string functions; nothing here evaluates text. Extraction order for a completion:
the last ``\\boxed{...}`` (nested braces), else the text after "final answer is", else the
text after GSM8K's ``####``, else the last number. Normalisation turns LaTeX spellings of
the same answer into one spelling (``\\dfrac`` -> ``\\frac``, units and ``\\text{}``
stripped, thousands commas dropped, ``$`` and ``\\left``/``\\right`` removed), so most
equal answers already match as strings; `math_equivalence` does the rest.
"""

from __future__ import annotations

import re
from typing import Optional

# Cap on the text we scan: model output is bounded by max_new_tokens anyway, this only
# keeps regexes linear-time on pathological input.
MAX_SCAN_CHARS = 100_000

_NUMBER = r"-?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?|-?\.\d+"
_NUMBER_RE = re.compile(rf"(?<![\w.])(?:{_NUMBER})(?:\s*/\s*\d+)?")


def find_boxed(text: str) -> Optional[str]:
    """Content of the last ``\\boxed{...}`` / ``\\fbox{...}`` (braces balanced), or of
    ``\\boxed 5``; None when there is none or the last one never closes."""
    text = text[-MAX_SCAN_CHARS:]
    starts = [m for m in re.finditer(r"\\(?:boxed|fbox)\b", text)]
    for match in reversed(starts):
        i = match.end()
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == "{":
            depth = 0
            for j in range(i, len(text)):
                if text[j] == "{":
                    depth += 1
                elif text[j] == "}":
                    depth -= 1
                    if depth == 0:
                        return text[i + 1:j]
            continue  # unclosed: try an earlier box
        rest = re.match(r"[^\s$]+", text[i:])  # "\boxed 5$"
        if rest:
            return rest.group()
    return None


def _after_final_answer(text: str) -> Optional[str]:
    matches = list(re.finditer(r"final answer is[:\s]*", text, flags=re.IGNORECASE))
    if not matches:
        return None
    tail = text[matches[-1].end():].strip()
    if tail.startswith("$"):  # "$\frac{1}{2}$."
        end = tail.find("$", 1)
        if end > 0:
            return tail[1:end]
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
    """The final answer of a model's solution, unnormalised; None when there is none."""
    if not isinstance(text, str) or not text.strip():
        return None
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


# --------------------------------------------------------------------------- normalising

_UNIT_WORDS = (
    "degrees", "degree", "cm", "m", "km", "mm", "kg", "g", "s", "sec", "seconds", "second",
    "min", "minute", "minutes", "hours", "hour", "h", "days", "day", "years", "year", "units",
    "unit", "inches", "inch", "feet", "foot", "ft", "miles", "mile", "dollars", "dollar",
    "cents", "cent", "km/h", "mph", "meters", "meter", "eV", "K", "J", "W", "Hz", "nm",
    "angstrom", "angstroms", "parsecs", "parsec", "pc", "arcseconds", "arcsec",
    "square", "sq", "cubic", "points", "point", "people", "percent", "students", "ways",
)
_UNIT_RE = re.compile(
    r"(?<=[\d}\s])\s*(?:" + "|".join(re.escape(u) for u in sorted(_UNIT_WORDS, key=len, reverse=True))
    + r")(?:\^?\{?[23]\}?)?\s*$")


def _strip_text_commands(s: str) -> str:
    """``\\text{...}``, ``\\mathrm{...}``, ``\\textbf{...}``, ``\\mbox{...}``: units are
    dropped when they follow a value, otherwise the content is kept (e.g. ``\\text{(C)}``)."""
    pattern = re.compile(r"\\(?:text|textbf|textit|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
    while True:
        match = pattern.search(s)
        if not match:
            return s
        before = s[:match.start()].strip()
        content = match.group(1)
        is_unit = bool(before) and bool(re.fullmatch(r"\s*~?\s*[a-zA-Z/ ]+\s*(?:\^\{?\d\}?)?\s*", content))
        rest = s[match.end():]
        if is_unit:  # "\text{ cm}^2": the power belongs to the unit
            rest = re.sub(r"^\s*\^\s*\{?\d\}?", "", rest)
        s = s[:match.start()] + ("" if is_unit else content) + rest


def _drop_thousands_commas(s: str) -> str:
    """'1,000,000' -> '1000000' when the commas group digits by three (not in tuples like
    '(1,234)' where a group could be a coordinate: only when the whole string is a number)."""
    if re.fullmatch(r"-?\d{1,3}(,\d{3})+(\.\d+)?", s):
        return s.replace(",", "")
    if re.fullmatch(r"-?\d{1,3}(\\!?,\d{3})+(\.\d+)?", s):  # "1{,}000" already un-braced
        return re.sub(r"\\!?,", "", s)
    return s


def normalize_answer(answer: Optional[str]) -> str:
    """One spelling per answer; '' for None. Case is kept (variables differ by case)."""
    if answer is None:
        return ""
    s = str(answer)[:10_000].strip()
    s = s.replace("\n", " ")
    s = re.sub(r"\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big)(?![a-zA-Z])", "", s)
    s = s.replace("\\!", "").replace("\\,", "").replace("\\;", "").replace("\\:", "").replace("\\ ", " ")
    s = s.replace("\\$", "").replace("$", "")
    s = re.sub(r"\\(?:dfrac|tfrac)", r"\\frac", s)
    s = s.replace("{,}", ",")
    s = re.sub(r"\^\s*\{?\\circ\}?", "", s)  # degrees
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
    return s
