"""LLMLingua-2 as an alternative compressor, from a model folder the user already has.

LLMLingua-2 (a token classifier on XLM-RoBERTa or mBERT) reports 2-5x compression, but its
weights live on a model hub and thrifty downloads nothing at run time: the adapter runs only on
a local folder (``compression: {llmlingua2_model: /models/llmlingua-2-xlm-roberta-large}``) with
the ``llmlingua`` package installed (``pip install llmlingua``, which brings torch and
transformers). Without either it fails when built, with a message that says what is missing.

It answers like :class:`~thrifty.compression.Compressor` (``compress(question, documents, ...)``
-> :class:`~thrifty.compression.Compressed`), so the gateway stage takes either. Unlike the
extractive compressor it drops words inside sentences, so ``dropped`` is not itemised.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from thrifty.accounting.tokens import count_text
from thrifty.compression.result import Compressed, CompressedDocument
from thrifty.errors import ProviderUnavailableError


class LLMLingua2Compressor:
    """LLMLingua-2 over a local model folder (CPU).

    Args:
        model_dir: the folder of a LLMLingua-2 checkpoint (``config.json`` and weights).
        device: torch device (default ``cpu``).

    Raises:
        ProviderUnavailableError: the folder is absent, or ``llmlingua`` is not installed.
    """

    def __init__(self, model_dir: str | Path, *, device: str = "cpu") -> None:
        folder = Path(model_dir)
        if not (folder / "config.json").is_file():
            raise ProviderUnavailableError(
                f"LLMLingua-2 needs a local model folder; {folder} has no config.json "
                "(thrifty does not download models: fetch the checkpoint once and point "
                "compression.llmlingua2_model at it, or use the built-in compressor)"
            )
        try:
            from llmlingua import PromptCompressor
        except ImportError as exc:
            raise ProviderUnavailableError(
                "LLMLingua-2 needs the llmlingua package: pip install llmlingua"
            ) from exc
        self.model_dir = folder
        self._compressor: Any = PromptCompressor(
            model_name=str(folder), use_llmlingua2=True, device_map=device
        )

    def compress(
        self,
        question: str,
        context: Sequence[str | Mapping[str, Any]],
        *,
        ratio: float | None = None,
        budget_tokens: int | None = None,
        min_tokens: int = 0,
        model: str = "",
    ) -> Compressed:
        """Keep about ``ratio`` of the tokens of each document (never under ``min_tokens``
        in all)."""
        ids = [None if isinstance(d, str) or d.get("id") is None else str(d["id"]) for d in context]
        texts = [d if isinstance(d, str) else str(d["text"]) for d in context]
        before = [count_text(t) for t in texts]
        total = sum(before)
        rate = ratio if ratio is not None else 0.5
        if budget_tokens is not None and total:
            rate = min(rate, budget_tokens / total)
        if total and rate * total < min_tokens:
            rate = min(1.0, min_tokens / total)
        kept = list(texts)
        if rate < 1.0 and total:
            out = self._compressor.compress_prompt(
                texts, rate=rate, question=question, force_tokens=["\n", "?", "."]
            )
            listed = out.get("compressed_prompt_list")
            if isinstance(listed, list) and len(listed) == len(texts):
                kept = [str(t) for t in listed]
            else:
                kept = [str(out.get("compressed_prompt", "\n\n".join(texts)))] + [""] * (
                    len(texts) - 1
                )
        docs = tuple(
            CompressedDocument(i, t, b, count_text(t))
            for i, t, b in zip(ids, kept, before, strict=True)
        )
        return Compressed(
            text="\n\n".join(d.text for d in docs if d.text),
            documents=docs,
            tokens_before=total,
            tokens_after=sum(d.tokens_after for d in docs),
            dropped=(),
            model=model,
        )
