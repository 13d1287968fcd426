"""Snapshots of :class:`operators.online_mf.OnlineMF`: versioned, CRC-checked, inspectable.

``python -m operators.mf_codec inspect FILE [ROWS]`` prints one.

>>> from schemas.events import Interaction
>>> m = OnlineMF(MFConfig(n_factors=4, negatives=1))
>>> for t, (u, i) in enumerate([("a", "x"), ("b", "y"), ("a", "z")]):
...     _ = m.learn(Interaction(f"e{t}", "click", u, "s", t, item_id=i))
>>> restore(snapshot(m)).user_vector("a").tolist() == m.user_vector("a").tolist()
True
"""

from __future__ import annotations

import sys
import zlib
from typing import Any

import numpy as np
import orjson

from operators.mf_config import BIASED, MFConfig
from operators.online_mf import F8, FORMAT, FORMAT_VERSION, OnlineMF

# -- snapshot codec ---------------------------------------------------------------------------
#
# Layout: one line of JSON (the header, sorted keys), "\n", then the body: sections of bytes
# listed in the header with their offsets. `ids` and `state` are JSON; vectors and biases are
# little-endian float64 (River's own precision, so a restore continues bit for bit).


class SnapshotError(ValueError):
    """A snapshot that cannot be restored; ``field`` names what is wrong."""
    def __init__(self, field_name: str, message: str, value: object = None) -> None:
        self.field = field_name
        super().__init__(f"operators.mf_codec snapshot: {field_name}: {message}, got {value!r}")


def snapshot(model: OnlineMF) -> bytes:
    """The model as bytes: a readable JSON header line, then the vectors (see :func:`restore`)."""
    r, biased = model.river, model.cfg.model == BIASED
    users, n = list(model._users), len(model._pool)
    init: Any = model._init_rng.get_state()
    ids = {"users": users, "user_items": [list(model._users[u]) for u in users],
           "items": model._pool, "item_lru": [model._slot[i] for i in model._items]}
    state = {"init_rng": [init[1].tolist(), int(init[2]), int(init[3]), float(init[4])],
             "negative_rng": list(model._neg_rng.getstate()[1]),
             "optimizer_steps": [getattr(r, o).n_iterations for o in model._optimizers],
             "global_mean": [r.global_mean.n, r.global_mean._mean] if biased else None}
    sections = {"ids": orjson.dumps(ids), "state": orjson.dumps(state),
                "user_vectors": _floats([r.u_latents[u] for u in users]),
                "item_vectors": _floats(model._matrix[:n])}
    if biased:
        sections["user_bias"] = _floats([r.u_biases[u] for u in users])
        sections["item_bias"] = _floats(model._ibias[:n])
    body, offset = b"".join(sections.values()), 0
    layout: dict[str, list[int]] = {}
    for name, part in sections.items():
        layout[name] = [offset, len(part)]
        offset += len(part)
    header = {"format": FORMAT, "version": FORMAT_VERSION, "config": model.cfg.to_dict(),
              "model_version": model.updates, "events": model.events,
              "counts": {"users": len(users), "items": n}, "sections": layout,
              "body_bytes": len(body), "body_crc32": zlib.crc32(body)}
    return orjson.dumps(header, option=orjson.OPT_SORT_KEYS) + b"\n" + body


def _floats(rows: Any) -> bytes:
    return np.asarray(rows, dtype=F8).tobytes()  # row-major: one vector after the other


def read_header(data: bytes) -> dict[str, Any]:
    """The header of a snapshot, checked for format and version (the body is not read)."""
    end = data.find(b"\n")
    try:
        header = orjson.loads(data[:end]) if end > 0 else None
    except orjson.JSONDecodeError:
        header = None
    if not isinstance(header, dict):
        raise SnapshotError("header", "expected one line of JSON first", data[:40])
    if header.get("format") != FORMAT:
        raise SnapshotError("format", f"expected {FORMAT!r}", header.get("format"))
    if header.get("version") != FORMAT_VERSION:
        raise SnapshotError("version", f"format version {header.get('version')!r} cannot be "
                            f"read by this build, which reads version {FORMAT_VERSION}",
                            header.get("version"))
    return header


def restore(data: bytes) -> OnlineMF:
    """The model a :func:`snapshot` holds, able to continue exactly where it stopped."""
    header = read_header(data)
    body = data[data.find(b"\n") + 1:]
    if len(body) != header.get("body_bytes") or zlib.crc32(body) != header.get("body_crc32"):
        raise SnapshotError("body", "length or CRC-32 does not match the header (truncated or "
                            "corrupted)", len(body))
    try:
        cfg = MFConfig.from_dict(header["config"])
    except (TypeError, ValueError, KeyError) as exc:
        raise SnapshotError("config", str(exc), header.get("config")) from exc
    try:
        return _rebuild(cfg, header, body)
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise SnapshotError("body", f"inconsistent with the header ({exc})") from exc


def _rebuild(cfg: MFConfig, header: dict[str, Any], body: bytes) -> OnlineMF:
    part = {k: body[o:o + n] for k, (o, n) in header["sections"].items()}
    ids, state = orjson.loads(part["ids"]), orjson.loads(part["state"])
    users, items, f = ids["users"], ids["items"], cfg.n_factors
    uvec = np.frombuffer(part["user_vectors"], dtype=F8).reshape(len(users), f)
    ivec = np.frombuffer(part["item_vectors"], dtype=F8).reshape(len(items), f)
    m = OnlineMF(cfg)
    r, biased = m.river, cfg.model == BIASED
    ubias = np.frombuffer(part["user_bias"], dtype=F8) if biased else np.zeros(len(users))
    ibias = np.frombuffer(part["item_bias"], dtype=F8) if biased else np.zeros(len(items))
    for user, own, vec, b in zip(users, ids["user_items"], uvec, ubias, strict=True):
        m._users[user] = dict.fromkeys(own)
        r.u_latents[user] = vec.copy()
        if biased:
            r.u_biases[user] = float(b)
    if items:  # else the fresh model's empty matrix stays
        m._matrix, m._ibias = np.array(ivec), np.array(ibias)
    for slot, item in enumerate(items):
        m._pool.append(item)
        m._slot[item] = slot
        r.i_latents[item] = ivec[slot].copy()
        if biased:
            r.i_biases[item] = float(ibias[slot])
    for slot in ids["item_lru"]:
        m._items[items[slot]] = None
    if len(m._items) != len(items):
        raise ValueError("item_lru is not a permutation of the items")
    keys, pos, has_gauss, cached = state["init_rng"]
    m._init_rng.set_state(("MT19937", np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    m._neg_rng.setstate((3, tuple(state["negative_rng"]), None))
    for name, steps in zip(m._optimizers, state["optimizer_steps"], strict=True):
        getattr(r, name).n_iterations = steps
    if biased:
        r.global_mean.n, r.global_mean._mean = state["global_mean"]
    m.events, m.updates = header["events"], header["model_version"]
    return m


def inspect(data: bytes, rows: int = 3) -> str:
    """The header, a field a line, then the first ``rows`` users and items (bias, vector)."""
    header, m = read_header(data), restore(data)
    lines = [f"{k}: {orjson.dumps(v, option=orjson.OPT_SORT_KEYS).decode()}"
             for k, v in sorted(header.items())]
    biases = (m.river.u_biases, m.river.i_biases) if m.cfg.model == BIASED else ({}, {})
    for kind, names, get, bias in (("user", list(m._users), m.user_vector, biases[0]),
                                   ("item", m._pool, m.item_vector, biases[1])):
        for name in names[:rows]:
            vec = " ".join(f"{x:+.4f}" for x in np.asarray(get(name)))
            lines.append(f"{kind} {name}: bias {bias.get(name, 0.0):+.4f} vector {vec}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m operators.mf_codec inspect FILE [ROWS]``: the only I/O of this module."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) in (2, 3) and args[0] == "inspect":
        with open(args[1], "rb") as fh:
            print(inspect(fh.read(), int(args[2]) if len(args) > 2 else 3))
        return 0
    print("usage: python -m operators.mf_codec inspect FILE [ROWS]", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
