"""Compare what the hardware produced with what the numpy golden model says, word for word.

On a mismatch the error names the first differing index, the expected value and the got value, plus how many words
differ in all, so a failing run says at once where to look in the waveform.
"""

import numpy as np

__all__ = ["Mismatch", "assert_words_equal", "Scoreboard"]


class Mismatch(AssertionError):
    """Hardware output differs from the golden model."""


def assert_words_equal(expected, got, *, what: str = "output") -> None:
    """Raise :class:`Mismatch` unless ``got`` equals ``expected`` element for element (same length, same values)."""
    expected = np.asarray(expected).ravel()
    got = np.asarray(got).ravel()
    if len(expected) != len(got):
        common = min(len(expected), len(got))
        first = next((i for i in range(common) if expected[i] != got[i]), common)
        raise Mismatch(f"{what}: expected {len(expected)} words, got {len(got)}; first difference at index {first}")
    differ = np.flatnonzero(expected != got)
    if len(differ):
        i = int(differ[0])
        raise Mismatch(f"{what}: {len(differ)} of {len(expected)} words differ; first at index {i}: "
                       f"expected {int(expected[i])}, got {int(got[i])}")


class Scoreboard:
    """Collects words as the hardware emits them and checks them, in order, against an expected sequence.

    Checking happens on every :meth:`push`, so a long run fails at the first bad word rather than at the end.
    """

    def __init__(self, expected, *, what: str = "output"):
        self.expected = np.asarray(expected).ravel()
        self.what = what
        self.got = []

    def push(self, word: int) -> None:
        """Record the next word from the hardware; raise :class:`Mismatch` if it is wrong or unexpected."""
        i = len(self.got)
        if i >= len(self.expected):
            raise Mismatch(f"{self.what}: unexpected word {word} at index {i}; only {len(self.expected)} expected")
        self.got.append(word)
        if int(self.expected[i]) != word:
            raise Mismatch(f"{self.what}: first difference at index {i}: expected {int(self.expected[i])}, got {word}")

    def check_complete(self) -> None:
        """Raise :class:`Mismatch` unless every expected word arrived."""
        assert_words_equal(self.expected, self.got, what=self.what)
