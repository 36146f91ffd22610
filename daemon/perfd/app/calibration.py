"""Bytes per token, per model, learned from the prompt tokens model servers report.

perfd estimates a prompt's tokens without a tokenizer (nothing to download):
UTF-8 bytes / 4 until a model's server has counted enough of its prompts, then
the bytes / tokens those counts show. The figure is kept in steps of 0.5 and
moves only when the counts cross to another step, so the budget's cut (and so
the response cache's key) stays the same from one run to the next; it is kept
per model in the user's state folder (a small JSON file, best effort: a file
that cannot be read or written leaves the default).
"""

from __future__ import annotations

import os

import msgspec

from perfd.fsutil import read_regular

FILE = "context-calibration.json"
DEFAULT = 4.0
STEP = 0.5
LOW, HIGH = 1.5, 8.0
MIN_TOKENS = 4096  # counted by the server before its figure replaces the default
KEEP_TOKENS = 1_000_000  # past this, both sums are halved: recent prompts weigh more
MIN_PROMPT_TOKENS = 256  # smaller prompts are mostly the chat format's own tokens
MAX_FILE = 256 * 1024


class Sample(msgspec.Struct, frozen=True):
    """What one model's server counted: prompt bytes sent and prompt tokens reported, summed."""

    bytes: int
    tokens: int


_samples = msgspec.json.Decoder(dict[str, Sample])


def figure(sample: Sample | None) -> float:
    """Bytes per token for `sample`: the default until MIN_TOKENS were counted; in STEP steps, within LOW-HIGH."""
    if sample is None or sample.tokens < MIN_TOKENS or sample.bytes <= 0:
        return DEFAULT
    return min(HIGH, max(LOW, round(sample.bytes / sample.tokens / STEP) * STEP))


class Calibration:
    """The per-model figures in `folder`/FILE, read again only when the file changed."""

    def __init__(self, folder: str) -> None:
        self.path = os.path.join(folder, FILE)
        self._seen: tuple[int, int, int] | None = None
        self._samples: dict[str, Sample] = {}

    def _load(self) -> dict[str, Sample]:
        try:
            st = os.stat(self.path)
        except OSError:
            self._seen, self._samples = None, {}
            return self._samples
        key = (st.st_ino, st.st_size, st.st_mtime_ns)
        if key != self._seen:
            try:
                self._samples = _samples.decode(read_regular(self.path, limit=MAX_FILE))
            except (OSError, msgspec.DecodeError):
                self._samples = {}
            self._seen = key
        return self._samples

    def bytes_per_token(self, model: str) -> float:
        return figure(self._load().get(model))

    def observe(self, model: str, prompt_bytes: int, prompt_tokens: int) -> None:
        """Add one call's prompt: its bytes, and the tokens its server reported."""
        if prompt_tokens < MIN_PROMPT_TOKENS or prompt_bytes <= 0:
            return
        from perfd.paths import replace_private

        samples = dict(self._load())
        old = samples.get(model, Sample(0, 0))
        got = Sample(old.bytes + prompt_bytes, old.tokens + prompt_tokens)
        if got.tokens > KEEP_TOKENS:
            got = Sample(got.bytes // 2, got.tokens // 2)
        samples[model] = got
        try:
            replace_private(self.path, msgspec.json.encode(samples))
        except OSError:
            pass  # another run writing it at the same moment, or a read-only state folder: next time


_open: dict[str, Calibration] = {}


def calibration() -> Calibration | None:
    """The calibration of the user's state folder (None when it cannot be used)."""
    from perfd.paths import state_dir

    try:
        folder = state_dir()
    except OSError:
        return None
    cal = _open.get(folder)
    if cal is None:
        cal = _open[folder] = Calibration(folder)
    return cal
