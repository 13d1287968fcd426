"""The FAISS item-vector index: incremental upserts make new items retrievable at once, replaced
vectors move, removed ones disappear; ivf agrees with exact search on clustered data."""

from __future__ import annotations

import numpy as np
import pytest

from serving.vectors import VectorIndex


def clustered(n: int, dim: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(32, dim))
    return {f"i{k}": centers[k % 32] + 0.3 * rng.normal(size=dim) for k in range(n)}


@pytest.mark.parametrize("layout", ["flat", "ivf"])
def test_a_new_item_is_retrievable_after_its_upsert(layout: str) -> None:
    vecs = clustered(3000, 8)
    idx = VectorIndex(8, layout=layout, nlist=32, nprobe=8)
    idx.upsert(vecs)
    assert len(idx) == 3000
    probe = np.zeros(8)
    probe[0] = 50.0
    assert "new" not in {i for i, _ in idx.search(probe, 5)}
    idx.upsert({"new": probe})
    assert idx.search(probe, 1)[0][0] == "new"
    assert np.allclose(idx.vector("new"), probe)
    # a replaced vector moves: the item is found where it now is, once
    idx.upsert({"new": -probe})
    top = [i for i, _ in idx.search(probe, 10)]
    assert "new" not in top and len(idx) == 3001
    assert idx.search(-probe, 1)[0][0] == "new"
    idx.remove(["new"])
    assert "new" not in idx and idx.vector("new") is None
    assert "new" not in {i for i, _ in idx.search(-probe, 10)}


def test_ivf_agrees_with_exact_search_and_honours_exclusions() -> None:
    vecs = clustered(4000, 16, seed=1)
    flat, ivf = VectorIndex(16, layout="flat"), VectorIndex(16, layout="ivf", nlist=64,
                                                           nprobe=16)
    flat.upsert(vecs)
    ivf.upsert(vecs)
    rng = np.random.default_rng(2)
    hits = 0
    for _ in range(100):
        q = rng.normal(size=16)
        exact = {i for i, _ in flat.search(q, 10)}
        hits += len(exact & {i for i, _ in ivf.search(q, 10)})
    assert hits / 1000 > 0.9
    q = vecs["i5"]
    assert "i5" not in {i for i, _ in ivf.search(q, 10, exclude={"i5"})}
    assert [i for i, _ in ivf.similar("i5", 3)] == [i for i, _ in flat.similar("i5", 3)]


def test_ivf_is_exact_until_it_has_enough_vectors_to_train() -> None:
    idx = VectorIndex(4, layout="ivf", nlist=16)
    idx.upsert({"a": np.array([1.0, 0, 0, 0]), "b": np.array([0, 1.0, 0, 0])})
    assert [i for i, _ in idx.search(np.array([0, 2.0, 0, 0]), 1)] == ["b"]
    idx.upsert(clustered(100, 4))  # 102 >= 4 * 16: trained now
    assert [i for i, _ in idx.search(np.array([0, 0, 0, 0.1]), 200)][:1] and len(idx) == 102
    with pytest.raises(ValueError, match="4 dimensions, got 3"):
        idx.upsert({"x": np.zeros(3)})
    with pytest.raises(ValueError, match="layout must be one of"):
        VectorIndex(4, layout="hnsw")
