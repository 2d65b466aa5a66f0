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
from thrifty.semantic.embedder import make_embedder
from thrifty.semantic.minilm_files import load_tokenizer, minilm_onnx_path
from thrifty.semantic.static import StaticEmbedder, build_table, load_or_build_table

#: A slice of the vocabulary (whole words, ids in BERT's frequency order): one onnx batch.
SUBSET = np.arange(2000, 2400)
DIM = 32


@pytest.fixture(scope="module")
def model_path() -> Path:
    pytest.importorskip("onnxruntime")
    try:
        return minilm_onnx_path()
    except ProviderUnavailableError as exc:  # pragma: no cover - without the semantic extra
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    tok = load_tokenizer(None)
    tok.no_padding()  # the shipped tokenizer.json pads to 128
    tok.no_truncation()
    return tok


@pytest.fixture(scope="module")
def subset_ids(tokenizer: Any) -> np.ndarray:
    words = [tokenizer.token_to_id(w) for w in ("king", "queen", "river", "lake")]
    return np.unique(np.r_[SUBSET, words])


@pytest.fixture(scope="module")
def subset_table(model_path: Path, tokenizer: Any, subset_ids: np.ndarray) -> np.ndarray:
    """One build over a slice of the vocabulary, with every connection refused meanwhile."""

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the static table must be built without the network")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", refuse)
        patch.setattr(socket, "create_connection", refuse)
        return build_table(model_path, tokenizer, dim=DIM, token_ids=subset_ids)


def test_the_table_is_the_same_build_after_build(
    model_path: Path, tokenizer: Any, subset_ids: np.ndarray, subset_table: np.ndarray
) -> None:
    again = build_table(model_path, tokenizer, dim=DIM, token_ids=subset_ids)
    assert subset_table.shape == (tokenizer.get_vocab_size(), DIM)
    assert subset_table.dtype == np.float32
    np.testing.assert_array_equal(subset_table, again)
    assert np.abs(subset_table[subset_ids]).sum(axis=1).min() > 0  # every built row is set
    assert not subset_table[:2000].any()  # rows outside the slice stay zero


def test_related_words_are_nearer_than_unrelated_ones(subset_table: np.ndarray) -> None:
    embedder = StaticEmbedder(table=subset_table)
    king, queen, river, lake = embedder.embed(["king", "queen", "river", "lake"])
    assert king @ queen > king @ river
    assert river @ lake > river @ queen


def test_a_built_table_is_reused_from_disk(
    model_path: Path,
    tokenizer: Any,
    subset_table: np.ndarray,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    builds: list[Any] = []

    def counted_build(path: Path, tok: Any, *, dim: int, progress: Any = None) -> np.ndarray:
        builds.append(progress)
        return subset_table

    monkeypatch.setattr(static, "build_table", counted_build)
    target = tmp_path / "table.npy"
    table, path = load_or_build_table(model_path, tokenizer, dim=DIM, path=target)
    assert path == target and target.is_file() and len(builds) == 1
    assert callable(builds[0])  # the one-off progress message
    again, _ = load_or_build_table(model_path, tokenizer, dim=DIM, path=target)
    assert len(builds) == 1
    np.testing.assert_array_equal(table, again)
    np.testing.assert_array_equal(table, subset_table)
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


def test_the_cli_builds_the_table_once(
    model_path: Path, subset_table: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from thrifty.cli import app

    monkeypatch.setattr(static, "build_table", lambda *a, **k: subset_table)
    target = tmp_path / "cli.npy"
    runner = CliRunner()
    first = runner.invoke(app, ["embedder", "build-static", "-o", str(target)])
    assert first.exit_code == 0, first.output
    assert "built in" in first.output and target.is_file()
    second = runner.invoke(app, ["embedder", "build-static", "-o", str(target)])
    assert second.exit_code == 0 and "already there" in second.output


def test_a_damaged_table_file_says_how_to_rebuild(
    model_path: Path, tokenizer: Any, tmp_path: Path
) -> None:
    damaged = tmp_path / "damaged.npy"
    damaged.write_bytes(b"not a table")
    with pytest.raises(ConfigError, match="build-static"):
        load_or_build_table(model_path, tokenizer, path=damaged)
