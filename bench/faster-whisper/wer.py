#!/usr/bin/env python3
"""Word error rate of a hypothesis against a reference, in percent.

    wer.py REFERENCE_TEXT HYPOTHESIS_TEXT

Both are normalised the same way before counting: lower case, punctuation
dropped (apostrophes kept inside words), whitespace collapsed. WER = (word
substitutions + deletions + insertions) / reference words, by edit distance.
"""

import re
import sys


def words(text):
    text = re.sub(r"[^\w\s']", " ", text.lower())
    return [w.strip("'") for w in text.split() if w.strip("'")]


def edits(reference, hypothesis):
    """Substitutions + deletions + insertions turning one sequence into the other."""
    previous = list(range(len(hypothesis) + 1))
    for i, r in enumerate(reference, 1):
        current = [i] + [0] * len(hypothesis)
        for j, h in enumerate(hypothesis, 1):
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (r != h))
        previous = current
    return previous[-1]


def wer(reference, hypothesis):
    ref, hyp = words(reference), words(hypothesis)
    return 100.0 * edits(ref, hyp) / max(len(ref), 1)


if __name__ == "__main__":
    print(f"{wer(sys.argv[1], sys.argv[2]):.1f}")
