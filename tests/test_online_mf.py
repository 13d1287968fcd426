"""The online collaborative model (operators/online_mf.py) on generated logs only.

Not in the operator conformance suite: its state is one mutable River model that ``learn``
updates in place (copying a model per event would cost O(model)), so "does not mutate its input"
cannot hold. The suite's other properties are checked here on the model and its snapshot codec:
deterministic, works from empty, codec round-trips, restore is invisible.
"""

from __future__ import annotations

import itertools
import math
import random
import zlib
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from river import optim, reco

from operators.mf_codec import SnapshotError, inspect, main, read_header, restore, snapshot
from operators.mf_config import BIASED, EXPLICIT, FUNK, LOG, MFConfig
from operators.online_mf import OnlineMF
from schemas.events import Interaction
from tests.strategies import interactions

SMALL = MFConfig(n_factors=4, negatives=3, max_user_items=3)
CONFIGS = {
    "biased": SMALL,
    "funk-log": replace(SMALL, model=FUNK, loss=LOG),
    "explicit": replace(SMALL, mode=EXPLICIT, negatives=0),
    "capped": replace(SMALL, max_users=2, max_items=3),
}
configs = pytest.mark.parametrize("cfg", CONFIGS.values(), ids=CONFIGS.keys())
examples = settings(max_examples=25, deadline=None)
logs = st.lists(interactions(), max_size=30)


def learn_all(model: OnlineMF, log: list[Interaction]) -> OnlineMF:
    for e in log:
        model.learn(e)
    return model


def vector(model: OnlineMF, item: str) -> np.ndarray[Any, Any]:
    vec = model.item_vector(item)
    assert vec is not None, item
    return vec


def click(user: str, item: str, t: int = 0, etype: str = "click") -> Interaction:
    return Interaction(f"e{t}", etype, user, "s", t, item_id=item)


def rating(user: str, item: str, value: float, t: int = 0) -> Interaction:
    return Interaction(f"r{t}", "rating", user, "s", t, item_id=item, value=value)


# -- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(("change", "field"), [
    ({"mode": "both"}, "mode"), ({"model": "svd"}, "model"), ({"n_factors": 0}, "n_factors"),
    ({"lr": float("nan")}, "lr"), ({"negatives": -1}, "negatives"), ({"seed": 2**32}, "seed"),
    ({"event_weights": {"view": -1.0}}, "event_weights"), ({"lr": 0.2}, "lr"),
    ({"mode": EXPLICIT, "loss": LOG}, "loss"), ({"max_items": 0}, "max_items"),
])
def test_config_errors_name_the_field(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=rf"MFConfig\.{field}:"):
        MFConfig(**change)


def test_config_round_trips_through_a_dict() -> None:
    cfg = replace(SMALL, event_weights={"view": 1.0, "purchase": 3.0})
    assert MFConfig.from_dict(orjson.loads(orjson.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match=r"MFConfig\.colour: unknown field"):
        MFConfig.from_dict({**cfg.to_dict(), "colour": "blue"})


# -- determinism and the snapshot codec --------------------------------------------------------


@configs
@examples
@given(log=logs)
def test_same_log_same_seed_gives_the_same_bits(cfg: MFConfig, log: list[Interaction]) -> None:
    a, b = learn_all(OnlineMF(cfg), log), learn_all(OnlineMF(cfg), log)
    assert snapshot(a) == snapshot(b)
    for user in {e.user_id for e in log}:
        va, vb = a.user_vector(user), b.user_vector(user)
        assert (va is None and vb is None) or (va is not None and vb is not None
                                               and va.tobytes() == vb.tobytes())


def test_the_seed_matters() -> None:
    log = [click(f"u{n % 3}", f"i{n % 5}", n) for n in range(20)]
    a = learn_all(OnlineMF(SMALL), log)
    b = learn_all(OnlineMF(replace(SMALL, seed=1)), log)
    assert vector(a, "i0").tolist() != vector(b, "i0").tolist()


@configs
@examples
@given(log=logs)
def test_snapshot_round_trips_bytes_exactly(cfg: MFConfig, log: list[Interaction]) -> None:
    model = learn_all(OnlineMF(cfg), log)
    data = snapshot(model)
    again = restore(data)
    assert snapshot(again) == data
    assert (again.events, again.updates, again.n_users, again.n_items) == \
        (model.events, model.updates, model.n_users, model.n_items)
    header = read_header(data)
    assert header["model_version"] == model.updates
    assert header["counts"] == {"users": model.n_users, "items": model.n_items}


@configs
@examples
@given(log=logs, rest=logs)
def test_restore_then_continue_equals_uninterrupted(cfg: MFConfig, log: list[Interaction],
                                                    rest: list[Interaction]) -> None:
    straight = learn_all(OnlineMF(cfg), log + rest)
    resumed = learn_all(restore(snapshot(learn_all(OnlineMF(cfg), log))), rest)
    assert snapshot(resumed) == snapshot(straight)
    user = (log + rest)[-1].user_id if log + rest else "u0"
    assert resumed.recommend(user, 5) == straight.recommend(user, 5)


def test_empty_model_round_trips_and_learns_like_a_fresh_one() -> None:
    log = [click("u", "a"), click("v", "b", 1), click("u", "b", 2)]
    empty = restore(snapshot(OnlineMF(SMALL)))
    assert snapshot(learn_all(empty, log)) == snapshot(learn_all(OnlineMF(SMALL), log))


def _with_header(data: bytes, **changes: Any) -> bytes:
    end = data.index(b"\n")
    header = {**orjson.loads(data[:end]), **changes}
    return orjson.dumps(header) + data[end:]


@pytest.mark.parametrize("version", [0, 2, "1"])
def test_other_format_versions_fail_naming_the_version(version: object) -> None:
    data = _with_header(snapshot(OnlineMF(SMALL)), version=version)
    with pytest.raises(SnapshotError, match=rf"format version {version!r} cannot be read") as exc:
        restore(data)
    assert exc.value.field == "version"


def test_garbled_snapshots_fail_naming_what_is_wrong() -> None:
    data = snapshot(learn_all(OnlineMF(SMALL), [click("u", "a"), click("v", "b", 1)]))
    cases: list[tuple[bytes, str]] = [
        (b"not a snapshot", "header"),
        (b'{"format": "pickle"}\n', "format"),
        (data[:-5], "body"),                                             # truncated
        (data[:-1] + bytes([data[-1] ^ 1]), "body"),                     # one bit flipped
        (_with_header(data, config={**SMALL.to_dict(), "n_factors": 0}), "config"),
    ]
    for bad, field in cases:
        with pytest.raises(SnapshotError) as exc:
            restore(bad)
        assert exc.value.field == field, (bad[:30], exc.value)
    with pytest.raises(SnapshotError, match=r"n_factors: must be an integer"):
        restore(cases[-1][0])
    # a body that matches its CRC but not the header's counts
    end = data.index(b"\n")
    header = orjson.loads(data[:end])
    body = data[end + 1:]
    o, n = header["sections"]["item_vectors"]
    short = body[:o] + body[o + 8:]
    header["sections"]["item_vectors"] = [o, n - 8]
    for name in ("user_bias", "item_bias"):
        header["sections"][name][0] -= 8
    header.update(body_bytes=len(short), body_crc32=zlib.crc32(short))
    with pytest.raises(SnapshotError, match="inconsistent with the header"):
        restore(orjson.dumps(header) + b"\n" + short)


def test_inspect_prints_the_header_and_vectors(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    model = learn_all(OnlineMF(SMALL), [click("u", "a"), click("v", "b", 1)])
    path = tmp_path / "mf.snapshot"
    path.write_bytes(snapshot(model))
    assert main(["inspect", str(path), "1"]) == 0
    out = capsys.readouterr().out
    assert 'format: "recs.online_mf"' in out
    assert f"model_version: {model.updates}\n" in out and "version: 1\n" in out
    assert "user u:" in out and "item a:" in out and "item b:" not in out
    assert "user u:" in inspect(path.read_bytes())
    assert main(["magic"]) == 2


# -- learning ----------------------------------------------------------------------------------


@examples
@given(log=logs)
def test_negatives_are_never_the_users_own_items(log: list[Interaction]) -> None:
    model = OnlineMF(replace(SMALL, max_user_items=50))
    own: dict[str, set[str]] = {}
    for e in log:
        out = model.learn(e)
        if out.updates:
            assert e.item_id is not None and out.items[0] == e.item_id
            negatives = out.items[1:]
            assert len(set(negatives)) == len(negatives) <= SMALL.negatives
            assert not set(negatives) & (own.get(e.user_id, set()) | {e.item_id})
            own.setdefault(e.user_id, set()).add(e.item_id)


def test_what_each_mode_learns() -> None:
    implicit, explicit = OnlineMF(SMALL), OnlineMF(replace(SMALL, mode=EXPLICIT))
    shown = Interaction("i", "impression", "u", "s", 0, item_ids=("a", "b"))
    for event, learns_implicit, learns_explicit in [
        (shown, False, False), (click("u", "a"), True, False), (rating("u", "b", 5.0), True, True),
        (rating("u", "c", 2.0), False, True),  # below positive_rating: not a positive
    ]:
        assert (implicit.learn(event).updates > 0) == learns_implicit, event
        assert (explicit.learn(event).updates > 0) == learns_explicit, event


def test_a_weight_scales_the_learning_rate() -> None:
    """A view of weight 2 at lr 0.05 is one step at lr 0.1, bit for bit (latent and bias)."""
    log = [click(f"u{n % 3}", f"i{n % 4}", n, etype="view") for n in range(12)]
    double = replace(SMALL, negatives=0, lr=0.05, bias_lr=0.01, event_weights={"view": 2.0})
    single = replace(SMALL, negatives=0, lr=0.1, bias_lr=0.02, event_weights={"view": 1.0})
    a, b = learn_all(OnlineMF(double), log), learn_all(OnlineMF(single), log)
    for item in ("i0", "i3"):
        assert vector(a, item).tobytes() == vector(b, item).tobytes()
    assert a.predict("u1", "i2") == b.predict("u1", "i2")


def test_explicit_mode_is_rivers_biased_mf() -> None:
    """Explicit mode with River's docs settings learns exactly what reco.BiasedMF learns."""
    rng = random.Random(3)
    log = [rating(f"u{rng.randrange(8)}", f"i{rng.randrange(12)}", rng.randint(1, 5), t)
           for t in range(300)]
    ours = OnlineMF(MFConfig(mode=EXPLICIT, n_factors=10, lr=0.05, bias_lr=0.025, l2=0.0,
                             negatives=0, seed=73, clip_gradient=1e12))
    river: Any = reco.BiasedMF(n_factors=10, bias_optimizer=optim.SGD(0.025),
                          latent_optimizer=optim.SGD(0.05),
                          latent_initializer=optim.initializers.Normal(0.0, 0.1, seed=73))
    for e in log:
        ours.learn(e)
        river.learn_one(e.user_id, e.item_id, e.value)
    for user, item in [("u0", "i0"), ("u3", "i7"), ("u7", "i11")]:
        assert ours.predict(user, item) == pytest.approx(river.predict_one(user, item), abs=1e-12)
        assert vector(ours, item).tolist() == river.i_latents[item].tolist()


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_a_diverging_model_fails_loudly() -> None:
    cfg = MFConfig(n_factors=8, lr=1.0, bias_lr=0.001, l2=0.0, init_sigma=5.0, negatives=2,
                   event_weights={"view": 1.0})
    model = OnlineMF(cfg)
    with pytest.raises(FloatingPointError, match=r"diverged .* lower lr \(1\.0\)"):
        for n in range(2_000):
            model.learn(click(f"u{n % 7}", f"i{n % 11}", n, etype="view"))


# A learning rate of 1 with an unbounded gradient: one update at the edge of the float range
# overflows exactly the side whose gradient is multiplied by it (River computes both sides' steps
# from the old values, so the other side's step is err × 0 = 0 when its partner vector is zero).
EDGE = MFConfig(n_factors=4, lr=1.0, bias_lr=0.001, l2=0.0, init_sigma=1.0, negatives=0,
                clip_gradient=1e308, event_weights={"click": 1.0})


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_divergence_on_the_item_side_alone_fails_loudly() -> None:
    """An item whose bias sits at the edge of the float range: the step overflows the item's
    vector while the user's vector stays finite (a check on the user alone would miss it)."""
    model = OnlineMF(EDGE)
    model.learn(click("u", "a", 0))
    assert model.seed_item("x", [0.0] * 4, bias=1e308)
    with pytest.raises(FloatingPointError, match=r"non-finite: item vectors"):
        model.learn(click("u", "x", 1))
    user_vector = model.user_vector("u")
    assert user_vector is not None and np.isfinite(user_vector).all()


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_divergence_on_the_user_side_alone_fails_loudly() -> None:
    """The mirror case: a user whose bias sits at the edge of the float range (planted in the
    River state) with a zero vector: the user's vector overflows, the item's stays finite."""
    model = OnlineMF(EDGE)
    model.learn(click("u", "a", 0))
    model.river.u_latents["u"] = np.zeros(4)
    model.river.u_biases["u"] = 1e308
    with pytest.raises(FloatingPointError, match=r"non-finite: user vector"):
        model.learn(click("u", "a", 1))
    item_vector = model.item_vector("a")
    assert item_vector is not None and np.isfinite(item_vector).all()


def planted_log(seed: int, users: int = 40, items: int = 40, per_user: int = 12,
                epochs: int = 6) -> tuple[list[Interaction], dict[str, set[str]]]:
    """Users of group A (B) click items of group A (B) only; the log is replayed ``epochs``
    times in a fresh random order. Returns the log and each user's clicked items."""
    rng = random.Random(seed)
    own: dict[str, set[str]] = {}
    pairs = []
    for u in range(users):
        group = [i for i in range(items) if i % 2 == u % 2]
        clicked = {f"i{i}" for i in rng.sample(group, per_user)}
        own[f"u{u}"] = clicked
        pairs += [(f"u{u}", i) for i in sorted(clicked)]
    log: list[Interaction] = []
    for _ in range(epochs):
        rng.shuffle(pairs)
        log += [click(u, i, len(log)) for u, i in pairs]
    return log, own


@pytest.mark.parametrize("model", [BIASED, FUNK])
def test_a_planted_signal_is_learned(model: str) -> None:
    """Top 5 new items per user: chance puts 8 of 28 unseen items of the user's group in it."""
    log, own = planted_log(seed=5)
    m = learn_all(OnlineMF(MFConfig(model=model, n_factors=8, negatives=5)), log)
    hits = total = 0
    for user, items in own.items():
        group = int(user[1:]) % 2
        for item, _ in m.recommend(user, 5, exclude=items):
            hits += int(item[1:]) % 2 == group
            total += 1
    chance = 8 / 28
    assert total == 5 * len(own)
    assert hits / total > 0.9 > 2 * chance


# -- reading -----------------------------------------------------------------------------------


def naive_score(model: OnlineMF, user: str, item: str) -> float:
    """The model's prediction from River's own dicts, summed exactly (no matrix, no BLAS)."""
    r, zeros = model.river, [0.0] * model.cfg.n_factors
    u, v = r.u_latents.get(user, zeros), r.i_latents[item]
    dot = math.fsum(float(a) * float(b) for a, b in zip(u, v, strict=True))
    if model.cfg.model == FUNK:
        return dot
    return float(r.global_mean.get() + r.u_biases.get(user, 0.0) + r.i_biases[item]) + dot


@configs
@examples
@given(log=logs, k=st.integers(0, 10), excluded=st.sets(st.sampled_from(["i0", "i3", "x"])))
def test_recommend_is_the_brute_force_ranking(cfg: MFConfig, log: list[Interaction], k: int,
                                              excluded: set[str]) -> None:
    """Scores agree with an exact recomputation (BLAS may round the last bit differently), and
    no item left out beats one in the list."""
    model = learn_all(OnlineMF(cfg), log)
    user = log[0].user_id if log else "u0"
    ref = {i: naive_score(model, user, i) for i in model._pool if i not in excluded}
    got = model.recommend(user, k, exclude=excluded)
    ids = [i for i, _ in got]
    assert len(ids) == len(set(ids)) == min(k, len(ref)) and not set(ids) & excluded
    for item, score in got:
        assert score == pytest.approx(ref[item], abs=1e-9)
        assert model.score(user, [item])[0] == pytest.approx(score, abs=1e-9)
    listed = [ref[i] for i in ids]
    assert all(a >= b - 1e-9 for a, b in itertools.pairwise(listed))
    left_out = [s for i, s in ref.items() if i not in ids]
    assert not listed or not left_out or min(listed) >= max(left_out) - 1e-9


def test_exact_ties_rank_by_slot() -> None:
    model = learn_all(OnlineMF(replace(SMALL, model=FUNK)),
                      [click("u", "c"), click("u", "a", 1), click("v", "b", 2)])
    assert [s for _, s in model.recommend("nobody", 3)] == [0.0, 0.0, 0.0]  # a zero vector
    assert [i for i, _ in model.recommend("nobody", 3)] == ["c", "a", "b"]
    assert [i for i, _ in model.recommend("nobody", 2, exclude={"a"})] == ["c", "b"]


def test_unknown_ids_read_as_zero_vectors_without_side_effects() -> None:
    model = learn_all(OnlineMF(SMALL), [click("u", "a"), click("v", "b", 1)])
    before = snapshot(model)
    assert model.user_vector("nobody") is None and model.item_vector("nothing") is None
    const = model.predict("nobody", "nothing")
    assert model.score("nobody", ["nothing", "a"])[0] == const
    assert [i for i, _ in model.recommend("nobody", 5)] != []
    assert snapshot(model) == before


@examples
@given(log=st.lists(interactions(), min_size=1, max_size=60))
def test_memory_caps_keep_the_most_recently_learned(log: list[Interaction]) -> None:
    cfg = replace(SMALL, max_users=2, max_items=3)
    model = OnlineMF(cfg)
    last_seen: dict[str, int] = {}
    item_seen: dict[str, int] = {}
    for n, e in enumerate(log):
        out = model.learn(e)
        if out.updates:
            assert e.item_id is not None
            last_seen[e.user_id] = item_seen[e.item_id] = n
        assert not set(out.evicted_items) & set(model._pool)
        assert not set(out.evicted_users) & set(model._users)
        assert model.n_users <= 2 and model.n_items <= 3
        assert len(model.river.u_latents) <= 2 and len(model.river.i_latents) <= 3
        newest_users = sorted(last_seen, key=last_seen.__getitem__)[-2:]
        newest_items = sorted(item_seen, key=item_seen.__getitem__)[-3:]
        assert sorted(model._users) == sorted(newest_users)
        assert sorted(model._pool) == sorted(newest_items)
        assert all(model.item_vector(i) is not None for i in newest_items)
        for item in model._pool:  # the scoring matrix follows the swap-removes
            assert np.array_equal(vector(model, item), model.river.i_latents[item])
