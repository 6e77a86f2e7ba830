"""tiktoken, made to work offline: the yardstick our counts are checked and benchmarked against.

tiktoken downloads its BPE files on first use. The same files ship inside the bpe-openai
wheel; this writes them into a private tiktoken cache under the names tiktoken looks for,
and tiktoken then verifies each file against the SHA-256 it expects before using it.
Used by the tests and benchmarks only (tiktoken is a development dependency).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"


def tiktoken_encoding(name: str) -> Any:
    """tiktoken's Encoding for `name` (o200k_base or cl100k_base), loaded with no network."""
    cache = Path(tempfile.gettempdir()) / "llmledger-tiktoken-cache"
    cache.mkdir(exist_ok=True)
    url = _URL.format(name=name)
    target = cache / hashlib.sha1(url.encode()).hexdigest()
    if not target.exists():
        packed = resources.files("bpe_openai.data").joinpath(f"{name}.tiktoken.gz").read_bytes()
        partial = target.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(gzip.decompress(packed))
        partial.replace(target)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
    import tiktoken

    return tiktoken.get_encoding(name)
