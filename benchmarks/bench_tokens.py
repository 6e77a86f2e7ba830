"""Token counting throughput: llmledger vs tiktoken on the same corpus, same run, same counts."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from corpus import make_corpus
from llmledger.core.tokens import CL100K, O200K, count_encoding
from llmledger.kit.reference_tokenizer import tiktoken_encoding


def best_seconds(run: Callable[[], object], repeats: int = 5) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    corpus = make_corpus()
    chars = sum(len(t) for t in corpus)
    print(f"corpus: {len(corpus)} documents, {chars:,} characters")
    for encoding in (O200K, CL100K):
        reference = tiktoken_encoding(encoding)
        ours = [count_encoding(t, encoding) for t in corpus]
        theirs = [len(reference.encode_ordinary(t)) for t in corpus]
        if ours != theirs:
            raise SystemExit(f"{encoding}: counts differ from tiktoken")
        tokens = sum(ours)
        ours_s = best_seconds(lambda enc=encoding: [count_encoding(t, enc) for t in corpus])
        theirs_s = best_seconds(lambda ref=reference: [len(ref.encode_ordinary(t)) for t in corpus])
        print(
            f"{encoding}: {tokens:,} tokens, identical counts | "
            f"llmledger {tokens / ours_s / 1e6:.2f} M tokens/s | "
            f"tiktoken {tokens / theirs_s / 1e6:.2f} M tokens/s | "
            f"ratio {theirs_s / ours_s:.2f}x"
        )


if __name__ == "__main__":
    main()
