"""The static embedder distilled from the installed MiniLM: a deterministic table, kept on disk
and reused, built without the network; sentence vectors equal the mean of their tokens' rows
whatever the word cache holds."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from thrifty.errors import ConfigError, ProviderUnavailableError
from thrifty.semantic import static
from thrifty.semantic.embedder import _load_tokenizer, _minilm_onnx_path, make_embedder
from thrifty.semantic.static import StaticEmbedder, build_table, load_or_build_table

#: A slice of the vocabulary (whole words, ids in BERT's frequency order): one onnx batch.
SUBSET = np.arange(2000, 2400)
DIM = 32


@pytest.fixture(scope="module")
def model_path() -> Path:
    pytest.importorskip("onnxruntime")
    try:
        return _minilm_onnx_path()
    except ProviderUnavailableError as exc:  # pragma: no cover - without the semantic extra
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    tok = _load_tokenizer(None)
    tok.no_padding()  # the shipped tokenizer.json pads to 128
    tok.no_truncation()
    return tok


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the static table must be built without the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_the_table_is_the_same_build_after_build_and_offline(
    model_path: Path, tokenizer: Any, no_network: None
) -> None:
    first = build_table(model_path, tokenizer, dim=DIM, token_ids=SUBSET)
    second = build_table(model_path, tokenizer, dim=DIM, token_ids=SUBSET)
    assert first.shape == (tokenizer.get_vocab_size(), DIM)
    assert first.dtype == np.float32
    np.testing.assert_array_equal(first, second)
    assert np.abs(first[SUBSET]).sum(axis=1).min() > 0  # every built row holds a vector
    assert not first[:2000].any()  # rows outside the subset stay zero


def test_related_words_are_nearer_than_unrelated_ones(model_path: Path, tokenizer: Any) -> None:
    ids = np.asarray([tokenizer.token_to_id(w) for w in ("king", "queen", "river", "lake")])
    table = build_table(model_path, tokenizer, dim=DIM, token_ids=np.r_[SUBSET, ids])
    embedder = StaticEmbedder(table=table)
    king, queen, river, lake = embedder.embed(["king", "queen", "river", "lake"])
    assert king @ queen > king @ river
    assert river @ lake > river @ queen


def test_a_built_table_is_reused_from_disk(
    model_path: Path, tokenizer: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[int] = []

    def small_build(path: Path, tok: Any, *, dim: int, progress: Any = None) -> np.ndarray:
        built.append(1)
        return build_table(path, tok, dim=dim, token_ids=SUBSET, progress=progress)

    monkeypatch.setattr(static, "build_table", small_build)
    target = tmp_path / "table.npy"
    seen: list[tuple[int, int]] = []
    table, path = load_or_build_table(
        model_path,
        tokenizer,
        dim=DIM,
        path=target,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert path == target and target.is_file() and built == [1]
    assert seen[-1] == (len(SUBSET), len(SUBSET))
    again, _ = load_or_build_table(model_path, tokenizer, dim=DIM, path=target)
    assert built == [1]
    np.testing.assert_array_equal(table, again)
    embedder = StaticEmbedder(model_path, table_path=target, build=False)
    assert embedder.dim == DIM
    assert embedder.name == f"static:{target.stem}"


def test_the_default_table_lives_in_the_cache_folder_keyed_by_the_model(
    model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(static.CACHE_DIR_ENV, str(tmp_path))
    monkeypatch.delenv(static.TABLE_PATH_ENV, raising=False)
    path = static.default_table_path(model_path)
    assert path.parent == tmp_path / "static"
    assert static.file_digest(model_path) in path.name
    assert f"d{static.STATIC_DIM}" in path.name


def test_a_missing_table_is_not_built_when_building_is_off(
    model_path: Path, tmp_path: Path
) -> None:
    with pytest.raises(ProviderUnavailableError, match="build-static"):
        StaticEmbedder(model_path, table_path=tmp_path / "absent.npy", build=False)


def test_pca_needs_enough_tokens_for_its_dimensions() -> None:
    with pytest.raises(ConfigError):
        static.reduce_table(np.ones((10, 384), dtype=np.float32), dim=32)
    with pytest.raises(ConfigError):
        static.reduce_table(np.ones((100, 384), dtype=np.float32), dim=500)


@pytest.fixture
def random_table(tokenizer: Any) -> np.ndarray:
    return np.random.default_rng(7).normal(size=(tokenizer.get_vocab_size(), 16)).astype("f4")


TEXTS = [
    'Charles Darwin\'s "On the Origin of Species" (1859) - naïve café_bar, e.g. U.S. 3.14!',
    "hello   world\tagain\nand again",
    "",
    "   ",
    "hello world",
]


def reference(table: np.ndarray, tokenizer: Any, texts: list[str]) -> np.ndarray:
    """Mean of the token rows of each whole text, tokenized in one piece."""
    rows = []
    for enc in tokenizer.encode_batch(texts, add_special_tokens=False):
        rows.append(table[enc.ids].mean(axis=0) if enc.ids else np.zeros(table.shape[1]))
    out = np.asarray(rows, dtype=np.float32)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def test_word_sums_give_the_mean_of_the_whole_texts_tokens(
    random_table: np.ndarray, tokenizer: Any
) -> None:
    embedder = StaticEmbedder(table=random_table, cache_size=0)
    np.testing.assert_allclose(
        embedder.embed(TEXTS), reference(random_table, tokenizer, TEXTS), atol=1e-6
    )
    # Known words now come from the word cache: the same vectors.
    np.testing.assert_allclose(
        embedder.embed(TEXTS[::-1]), reference(random_table, tokenizer, TEXTS[::-1]), atol=1e-6
    )
    assert not embedder.embed([""]).any()


def test_a_full_word_cache_starts_over_without_changing_vectors(
    random_table: np.ndarray, tokenizer: Any
) -> None:
    embedder = StaticEmbedder(table=random_table, cache_size=0, max_chunks=5)
    texts = [f"word{i} and some shared words here" for i in range(6)]
    for text in texts:
        np.testing.assert_allclose(
            embedder.embed([text]), reference(random_table, tokenizer, [text]), atol=1e-6
        )
        assert len(embedder._chunk_index) <= 5 + 6
    embedder.forget_words()
    np.testing.assert_allclose(
        embedder.embed(texts), reference(random_table, tokenizer, texts), atol=1e-6
    )


def test_tables_name_their_embedder_so_caches_never_mix(random_table: np.ndarray) -> None:
    a = StaticEmbedder(table=random_table)
    b = StaticEmbedder(table=random_table * 2)
    assert a.name.startswith("static:") and a.name != b.name
    assert a.dim == 16


def test_make_embedder_knows_the_static_embedder(random_table: np.ndarray) -> None:
    assert isinstance(make_embedder("static", table=random_table), StaticEmbedder)
