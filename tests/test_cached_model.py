"""@thrifty.cached over real model inference (scikit-learn) and numpy functions."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression

import thrifty
from thrifty.errors import ConfigError


@pytest.fixture(params=["memory", "sqlite"])
def cache(request, tmp_path):
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/model.db"
    with thrifty.Cache(url) as c:
        yield c


@pytest.fixture(scope="module")
def classifier():
    x, y = make_classification(n_samples=200, n_features=6, random_state=0)
    return LogisticRegression(max_iter=500).fit(x, y), x


class Counted:
    """Wraps a predict function and records the batches it receives."""

    def __init__(self, fn):
        self.fn = fn
        self.batches: list = []

    def __call__(self, batch, *args, **kwargs):
        self.batches.append(batch)
        return self.fn(batch, *args, **kwargs)


def test_predict_proba_is_cached_by_input_value(cache, classifier):
    model, x = classifier
    seen = Counted(model.predict_proba)
    predict = thrifty.cached(model="sentiment", version="2024-05", cache=cache)(seen)

    first = predict(x[:20])
    second = predict(x[:20].copy())  # another object with the same values
    assert len(seen.batches) == 1
    assert second.dtype == first.dtype and second.shape == first.shape
    assert np.array_equal(second, model.predict_proba(x[:20]))
    second[0, 0] = 42.0  # a hit is an ordinary writable array
    assert cache.stats().hits == 1


def test_a_different_input_dtype_shape_or_kwarg_misses(cache):
    seen = Counted(lambda a, scale=1: a * scale)
    fn = thrifty.cached(model="m", version="1", cache=cache)(seen)
    base = np.arange(6, dtype=np.float64)
    fn(base)
    fn(base.astype(np.float32))
    fn(base.reshape(2, 3))
    fn(base, scale=2)
    fn(base, scale=2)
    fn(np.arange(6, dtype=np.float64))
    assert len(seen.batches) == 4


def test_per_row_computes_only_the_missing_rows(cache, classifier):
    model, x = classifier
    seen = Counted(model.predict_proba)
    predict = thrifty.cached(model="sentiment", version="1", cache=cache, per_row=True)(seen)

    predict(x[:7])
    out = predict(x[:10])
    assert [len(b) for b in seen.batches] == [7, 3]
    assert np.array_equal(seen.batches[1], x[7:10])
    assert np.array_equal(out, model.predict_proba(x[:10]))
    assert out.dtype == np.float64

    shuffled = x[[9, 0, 4, 4]]
    assert np.array_equal(predict(shuffled), model.predict_proba(shuffled))
    assert len(seen.batches) == 2  # every row already cached


def test_per_row_computes_a_repeated_new_row_once(cache):
    seen = Counted(lambda rows: [r.upper() for r in rows])
    shout = thrifty.cached(model="shout", cache=cache, per_row=True)(seen)
    assert shout(["a", "b", "a", "c"]) == ["A", "B", "A", "C"]
    assert shout(["c", "d"]) == ["C", "D"]
    assert seen.batches == [["a", "b", "c"], ["d"]]


def test_per_row_rejects_an_output_with_the_wrong_row_count(cache):
    broken = thrifty.cached(model="broken", cache=cache, per_row=True)(lambda rows: rows[:1])
    with pytest.raises(ConfigError, match="rows"):
        broken(np.arange(6).reshape(3, 2))


def test_invalidating_a_version_drops_only_its_answers(cache):
    def double(a):
        return a * 2

    v1 = thrifty.cached(model="doubler", version="1", cache=cache)(Counted(double))
    v2 = thrifty.cached(model="doubler", version="2", cache=cache)(Counted(double))
    data = np.ones(3)
    v1(data)
    v2(data)
    assert cache.invalidate(model="doubler", model_version="1") == 1
    v1(data)
    v2(data)
    assert len(v1.__wrapped__.batches) == 2
    assert len(v2.__wrapped__.batches) == 1
    assert v2.thrifty.invalidate() == 1


def test_outputs_round_trip_exactly(cache):
    def model(a):
        return {"probs": a / 3, "labels": (a > 1).astype(np.int8), "names": ("x", "y")}

    fn = thrifty.cached(model="multi", cache=cache)(model)
    fresh = fn(np.arange(4, dtype=np.float32))
    hit = fn(np.arange(4, dtype=np.float32))
    assert hit["names"] == ("x", "y")
    for name in ("probs", "labels"):
        assert hit[name].dtype == fresh[name].dtype
        assert np.array_equal(hit[name], fresh[name])


async def test_async_functions_are_cached(cache):
    seen: list[int] = []

    @thrifty.cached(model="async-model", cache=cache)
    async def embed(a):
        seen.append(len(a))
        return a + 1

    @thrifty.cached(model="async-rows", cache=cache, per_row=True)
    async def embed_rows(a):
        seen.append(len(a))
        return a + 1

    assert np.array_equal(await embed(np.arange(3)), np.arange(1, 4))
    assert np.array_equal(await embed(np.arange(3)), np.arange(1, 4))
    await embed_rows(np.arange(5))
    assert np.array_equal(await embed_rows(np.arange(8)), np.arange(1, 9))
    assert seen == [3, 5, 3]


def test_an_unhashable_input_runs_uncached(cache, caplog):
    seen = Counted(lambda obj: 1)
    fn = thrifty.cached(model="odd", cache=cache)(seen)
    with caplog.at_level(logging.WARNING, logger="thrifty.model"):
        assert fn(object()) == 1
        assert fn(object()) == 1
    assert len(seen.batches) == 2
    assert "cannot key" in caplog.text


def test_an_unstorable_output_is_returned_anyway(cache, caplog):
    fn = thrifty.cached(model="odd-out", cache=cache)(Counted(lambda a: object()))
    with caplog.at_level(logging.WARNING, logger="thrifty.model"):
        assert fn(np.zeros(2)) is not None
    assert "cannot store" in caplog.text


def test_the_key_is_stable_and_depends_on_model_and_version(cache):
    def ident(a):
        return a

    a = thrifty.cached(model="m", version="1", cache=cache)(ident)
    b = thrifty.cached(model="m", version="2", cache=cache)(ident)
    arr = np.arange(4)
    assert a.thrifty.key(arr) == a.thrifty.key(arr.copy()) == a.thrifty.key(np.arange(4))
    assert a.thrifty.key(arr) != b.thrifty.key(arr)
    assert a.thrifty.key({"x": 1, "y": [1, 2]}) == a.thrifty.key({"y": [1, 2], "x": 1})


def test_methods_key_on_their_arguments_not_on_self(cache, classifier):
    model, x = classifier

    class Sentiment:
        def __init__(self):
            self.batches = []

        @thrifty.cached(model="sentiment", version="3", cache=cache, per_row=True)
        def predict(self, batch):
            self.batches.append(len(batch))
            return model.predict_proba(batch)

        @thrifty.cached(model="sentiment-labels", version="3", cache=cache)
        def labels(self, batch):
            self.batches.append("labels")
            return model.predict(batch)

    first, second = Sentiment(), Sentiment()
    first.predict(x[:4])
    assert np.array_equal(second.predict(x[:6]), model.predict_proba(x[:6]))
    assert (first.batches, second.batches) == ([4], [2])
    first.labels(x[:3])
    assert np.array_equal(second.labels(x[:3]), model.predict(x[:3]))
    assert second.batches == [2]


def test_cached_needs_a_model_name():
    with pytest.raises(ConfigError):
        thrifty.cached(model="")


def test_torch_tensors_come_back_as_tensors(cache):
    torch = pytest.importorskip("torch")
    fn = thrifty.cached(model="torch-model", cache=cache, per_row=True)(lambda t: t * 2)
    fn(torch.arange(3, dtype=torch.float32))
    out = fn(torch.arange(5, dtype=torch.float32))
    assert isinstance(out, torch.Tensor)
    assert torch.equal(out, torch.arange(5, dtype=torch.float32) * 2)


def test_torch_tensors_numpy_cannot_hold_keep_their_dtype(cache):
    """bfloat16 (and the float8 kinds) have no numpy type: they are keyed and stored as their
    bits and come back in their dtype, instead of running uncached."""
    torch = pytest.importorskip("torch")
    calls = []

    def model(t):
        calls.append(t.shape[0])
        return (t.float() * 2).to(torch.bfloat16)

    fn = thrifty.cached(model="bf16-model", cache=cache)(model)
    x = torch.tensor([1.5, -2.25, 3.0], dtype=torch.bfloat16)
    first, second = fn(x), fn(x)
    assert calls == [3]  # the second call was a hit
    assert second.dtype == torch.bfloat16 and torch.equal(first, second)
    # the same bits under another dtype are another input
    fn(x.view(torch.int16))
    assert calls == [3, 3]


def test_torch_tensor_on_a_missing_device_comes_back_on_the_cpu():
    torch = pytest.importorskip("torch")
    from thrifty.integrations._tensors import pack, unpack

    packed = pack(torch.arange(4, dtype=torch.float32))
    packed["device"] = "cuda:99"  # written on a machine with a GPU this one lacks
    out = unpack(packed)
    assert out.device.type == "cpu" and torch.equal(out, torch.arange(4, dtype=torch.float32))


def test_cuda_tensors_come_back_on_their_device(cache):
    """A hit must be usable where the miss was: a GPU model's answer comes back on the GPU."""
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    layer = torch.nn.Linear(8, 4).cuda().to(torch.bfloat16)
    fn = thrifty.cached(model="gpu-linear", cache=cache, per_row=True)(lambda t: layer(t).detach())
    x = torch.randn(6, 8, device="cuda", dtype=torch.bfloat16)
    miss = fn(x)
    hit = fn(x)
    assert hit.device == miss.device and hit.device.type == "cuda"
    assert hit.dtype == torch.bfloat16 and torch.equal(hit, miss)
    mixed = fn(torch.cat([x[:3], torch.randn(2, 8, device="cuda", dtype=torch.bfloat16)]))
    assert mixed.device.type == "cuda" and torch.equal(mixed[:3], miss[:3])
    # keyed through the pinned scratch buffer: the same key as the same values on the host,
    # for a small input and for one past the parallel-hashing size, twice in a row
    whole = thrifty.cached(model="gpu-whole", cache=cache)(lambda t: t.sum())
    for shape in ((6, 8), (4096, 1024)):
        y = torch.randn(*shape, device="cuda", dtype=torch.bfloat16)
        assert whole.thrifty.key(y) == whole.thrifty.key(y.cpu()) == whole.thrifty.key(y)
        assert whole.thrifty.key(y) != whole.thrifty.key(y + 1)


def test_per_row_torch_rows_keep_their_dtype(cache):
    torch = pytest.importorskip("torch")
    layer = torch.nn.Linear(8, 4).to(torch.bfloat16)
    fn = thrifty.cached(model="bf16-rows", cache=cache, per_row=True)(lambda t: layer(t).detach())
    x = torch.randn(6, 8, dtype=torch.bfloat16)
    miss, hit = fn(x), fn(x)
    assert miss.dtype == hit.dtype == torch.bfloat16
    assert torch.equal(miss, layer(x).detach()) and torch.equal(hit, miss)


def test_large_arrays_are_keyed_by_their_chunks_in_parallel(cache, monkeypatch):
    """From TREE_HASH_MIN_BYTES an input is keyed by the hashes of its chunks: the same values
    give the same key, one changed value in a late chunk another."""
    from thrifty.integrations import _tensors

    monkeypatch.setattr(_tensors, "TREE_HASH_MIN_BYTES", 1 << 16)
    monkeypatch.setattr(_tensors, "TREE_CHUNK_BYTES", 1 << 12)
    calls = []
    fn = thrifty.cached(model="big-input", cache=cache)(lambda a: calls.append(1) or a.sum())
    big = np.arange(20_000, dtype=np.float64)  # 160 KB: 40 chunks
    key = fn.thrifty.key(big)
    assert key == fn.thrifty.key(big.copy())
    changed = big.copy()
    changed[-1] += 1
    assert fn.thrifty.key(changed) != key
    monkeypatch.setattr(_tensors, "TREE_HASH_MIN_BYTES", 1 << 40)  # one serial pass: another key
    assert fn.thrifty.key(big) != key
    monkeypatch.setattr(_tensors, "TREE_HASH_MIN_BYTES", 1 << 16)
    fn(big)
    fn(big.copy())
    assert calls == [1]
