"""Write examples/reviews.csv: 600 short, synthetic movie reviews labelled positive (1) or negative (0).

Synthetic on purpose: gpuplan ships no third-party data, and the calibration needs texts whose lengths vary
like real reviews (most short, a long tail), not their literary merit. Seeded, so the file is reproducible:
    python examples/make_reviews.py
"""

import csv
import random
from pathlib import Path

POSITIVE = ["a delight", "wonderful", "moving and funny", "beautifully shot", "worth every minute",
            "the best thing I saw this year", "smart, warm and surprising", "a joy from start to finish"]
NEGATIVE = ["a mess", "painfully slow", "dull and predictable", "badly acted", "a waste of two hours",
            "the worst thing I saw this year", "loud, long and empty", "boring from start to finish"]
SUBJECTS = ["The film", "This movie", "The sequel", "The director's new picture", "The documentary", "It"]
DETAILS = ["The cast", "The score", "The script", "The editing", "The second half", "The ending", "The dialogue",
           "The photography", "The lead performance", "The pacing"]
GOOD = ["works", "shines", "lands every beat", "feels fresh", "is superb", "carries it"]
BAD = ["drags", "falls flat", "never lands", "feels stale", "is clumsy", "sinks it"]


def review(rng: random.Random, label: int) -> str:
    verdicts, verbs = (POSITIVE, GOOD) if label else (NEGATIVE, BAD)
    parts = [f"{rng.choice(SUBJECTS)} is {rng.choice(verdicts)}."]
    # Lengths like real reviews: most are a few sentences, some run on.
    for _ in range(int(rng.expovariate(1 / 4))):
        parts.append(f"{rng.choice(DETAILS)} {rng.choice(verbs)}.")
    return " ".join(parts)


def main() -> None:
    rng = random.Random(42)
    out = Path(__file__).with_name("reviews.csv")
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for _ in range(600):
            label = rng.randint(0, 1)
            w.writerow([review(rng, label), label])
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
