#!/usr/bin/env python3
"""Character error rate of Persian hypotheses against references, in percent.

    cer.py FILE    FILE: lines of REFERENCE<TAB>HYPOTHESIS

Both sides are normalised alike first, so that spelling variants Whisper
and Peyk's normaliser differ on do not count as errors: Arabic yeh/kaf as
Persian, digits as Latin, punctuation dropped, ZWNJ and whitespace runs as
one space. CER = character edits (substitutions, deletions, insertions) /
reference characters, summed over all lines.
"""

import os
import re
import sys

# The edit distance of the word error rate, over characters here.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "faster-whisper"))
from wer import edits  # noqa: E402

ARABIC_TO_PERSIAN = str.maketrans({"ي": "ی", "ى": "ی", "ك": "ک", "ـ": None, **{chr(0x06F0 + d): str(d) for d in range(10)}})


def normalise(text):
    text = text.translate(ARABIC_TO_PERSIAN).replace("\u200c", " ")
    text = re.sub(r"[^\w\s]", " ", text)
    return " ".join(text.split())


if __name__ == "__main__":
    total_edits = total_chars = 0
    with open(sys.argv[1], encoding="utf-8") as pairs:
        for line in pairs:
            reference, _, hypothesis = line.rstrip("\n").partition("\t")
            reference, hypothesis = normalise(reference), normalise(hypothesis)
            total_edits += edits(reference, hypothesis)
            total_chars += len(reference)
    print(f"{100.0 * total_edits / max(total_chars, 1):.1f}")
