"""A certified catalogue of the best softmax and Tammes codes gnc knows, shipped with the package.

Every entry is a ``(K, d)`` code stored as float32 rows together with the exact, certified
values of *those* rows (normalized in float64): ``rho`` with its certificate (``gap``,
``certified``) from :func:`gnc.geometry.one_vs_rest_distances`, and the max cosine. Its
provenance says where it came from: a known configuration (embedded by zero padding when it
lives in a smaller dimension), the softmax-code search (seed, restarts, seconds), or the other
kind's search (a Tammes code can be the better softmax code, and vice versa).

Shapes with a closed form (``K <= 2d`` or ``d <= 2``, see :func:`gnc.codes.closed_form_code`)
are not stored: :func:`best_known` builds and certifies them on the fly.

Rebuild or extend (resumable: done shapes are skipped unless ``--redo``, and a stored code is
only ever replaced by one with a larger certified value)::

    python -m gnc.codes build --dims 3:12 --classes 5:64 --time-limit 3
    python -m gnc.codes build --shape 100,10 --shape 200,30 --time-limit 60
    python -m gnc.codes recheck --time-limit 20   # candidate shapes, more seeds
    python -m gnc.codes summary

:func:`compare_catalogue` classifies every shape with both kinds, comparing ``rho`` of the best
softmax code with ``T^2 / 2 = 1 - max cosine`` of the best Tammes code:

- ``"equal"``: ``rho = T^2 / 2`` within ``tol``;
- ``"tammes-code"``: ``rho > T^2 / 2 + tol``, but a Tammes code attains it (the softmax code
  has minimum distance ``T`` within ``tol`` on ``1 - max cosine``, or the best Tammes code has
  the same ``rho``): ``D_k > 1 - s_k`` for every class (rattlers, contacts whose hull misses
  ``s_k w_k``, or ties not resolved to ``tol`` by the search);
- ``"candidate"``: the softmax code has a smaller minimum distance than ``T`` and a larger
  ``rho`` than the Tammes code: the best softmax code known is not a Tammes code, a candidate
  counterexample to "softmax codes are Tammes codes" (left open by Jiang et al., "Generalized
  Neural Collapse for a Large Number of Classes", ICML 2024), re-checked by ``recheck``.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from tqdm import tqdm

from gnc._checks import check_int
from gnc.codes.result import CodeResult, certify_code
from gnc.codes.softmax import closed_form_code, softmax_code
from gnc.codes.tammes import tammes_code
from gnc.geometry.bounds import rho_star_upper
from gnc.geometry.configurations import KNOWN_CONFIGURATIONS
from gnc.io import Record, atomic_write
from gnc.sphere import normalize_rows

__all__ = [
    "CATALOGUE_PATH",
    "CatalogueEntry",
    "best_known",
    "build_catalogue",
    "catalogue_entries",
    "compare_catalogue",
    "load_catalogue",
    "recheck_candidates",
]

#: The catalogue shipped inside the package.
CATALOGUE_PATH = Path(__file__).resolve().parent / "data" / "catalogue.npz"

Kind = Literal["softmax", "tammes"]


@dataclass(frozen=True)
class CatalogueEntry(Record):
    """The best code gnc knows for one ``(K, d)`` and kind, with its certified values.

    ``to_dict()`` leaves out ``code`` (the catalogue stores it as an array of its own).

    Attributes:
        kind: ``"softmax"`` (largest ``rho``) or ``"tammes"`` (largest min distance).
        num_classes: ``K``.
        feature_dim: ``d``.
        code: ``(K, d)`` float64 rows holding the stored float32 values (unit up to float32
            rounding, ``|norm - 1| < 1e-6``); the values below are those of these rows
            normalized in float64.
        rho: Exact ``rho`` of ``code``.
        lower: Certified lower bound on ``rho`` (the exact solver's dual value).
        gap: ``rho - lower``.
        certified: Whether the exact solver certified every ``D_k``.
        max_cosine: ``max_{j != k} <w_j, w_k>``.
        min_pairwise_distance: ``sqrt(2 - 2 max_cosine)``.
        source: ``"closed-form"``, ``"known-configuration"``, ``"softmax-search"`` or
            ``"tammes-search"``.
        name: Closed form or configuration name (``None`` for searches).
        seed: Seed of the search (``None`` otherwise).
        restarts: Restarts of the search (``None`` otherwise).
        seconds: Wall time of the search (``None`` otherwise).
    """

    kind: Kind
    num_classes: int
    feature_dim: int
    code: torch.Tensor
    rho: float
    lower: float
    gap: float
    certified: bool
    max_cosine: float
    min_pairwise_distance: float
    source: str
    name: str | None = None
    seed: int | None = None
    restarts: int | None = None
    seconds: float | None = None

    _omit_from_dict: ClassVar[tuple[str, ...]] = ("code",)


def _key(kind: str, K: int, d: int) -> str:
    return f"{kind}_{K}_{d}"


def storable(code: torch.Tensor) -> torch.Tensor:
    """The rows as stored: normalized in float64, rounded to float32, returned as float64.

    The catalogue stores these float32 values and certifies exactly them (``certify_code``
    normalizes in float64 first), so the values recomputed from the loaded rows are identical.

    Example:
        >>> X = storable(torch.randn(5, 3, dtype=torch.float64))
        >>> torch.equal(X.float().double(), X), bool((X.norm(dim=1) - 1).abs().max() < 1e-6)
        (True, True)
    """
    return normalize_rows(code.detach().to("cpu", torch.float64)).to(torch.float32).double()


def _certified_entry(
    code: torch.Tensor, kind: Kind, source: str, **provenance: Any
) -> CatalogueEntry:
    """``code`` as an entry with its values certified by :func:`certify_code`.

    Candidates for storing pass :func:`storable` rows (the float32 values that get stored).
    """
    cert = certify_code(code, kind=kind, method=source, iterations=0, seconds=0.0, stop_reason="")
    return CatalogueEntry(
        kind=kind,
        num_classes=cert.num_classes,
        feature_dim=cert.feature_dim,
        code=code,
        rho=cert.rho,
        lower=cert.lower,
        gap=cert.gap,
        certified=cert.certified,
        max_cosine=cert.max_cosine,
        min_pairwise_distance=cert.min_pairwise_distance,
        source=source,
        **provenance,
    )


def _score(entry: CatalogueEntry) -> float:
    """Larger is better: the certified ``rho`` (softmax) or ``-max cosine`` (Tammes)."""
    if entry.kind == "softmax":
        return entry.lower if entry.certified else -math.inf
    return -entry.max_cosine


def load_catalogue(path: str | Path | None = None) -> dict[tuple[str, int, int], CatalogueEntry]:
    """All stored entries, keyed by ``(kind, K, d)`` (empty when the file does not exist).

    Example:
        >>> entries = load_catalogue()
        >>> all(e.code.shape == (K, d) for (_, K, d), e in entries.items())
        True
    """
    p = Path(path) if path is not None else CATALOGUE_PATH
    if not p.exists():
        return {}
    return dict(_load_cached(str(p.resolve()), p.stat().st_mtime_ns))


@functools.lru_cache(maxsize=4)
def _load_cached(path: str, mtime: int) -> tuple[tuple[tuple[str, int, int], CatalogueEntry], ...]:
    del mtime  # part of the cache key only
    out = []
    with np.load(path) as z:
        metas = json.loads(str(z["meta"]))
        for m in metas:
            code = torch.from_numpy(z[_key(m["kind"], m["num_classes"], m["feature_dim"])])
            entry = CatalogueEntry(code=code.to(torch.float64), **m)
            out.append(((entry.kind, entry.num_classes, entry.feature_dim), entry))
    return tuple(out)


def _save(path: Path, entries: dict[tuple[str, int, int], CatalogueEntry]) -> None:
    ordered = sorted(entries.values(), key=lambda e: (e.kind, e.feature_dim, e.num_classes))
    arrays: dict[str, Any] = {
        _key(e.kind, e.num_classes, e.feature_dim): e.code.to(torch.float32).numpy()
        for e in ordered
    }
    arrays["meta"] = np.array(json.dumps([e.to_dict() for e in ordered]))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda fh: np.savez_compressed(fh, **arrays))


def catalogue_entries(
    kind: Kind = "softmax", path: str | Path | None = None
) -> list[CatalogueEntry]:
    """Stored entries of one kind, sorted by ``(d, K)``.

    Example:
        >>> all(e.kind == "tammes" for e in catalogue_entries("tammes"))
        True
    """
    entries = load_catalogue(path)
    return sorted(
        (e for (k, _, _), e in entries.items() if k == kind),
        key=lambda e: (e.feature_dim, e.num_classes),
    )


def best_known(
    num_classes: int,
    feature_dim: int,
    *,
    kind: Kind = "softmax",
    path: str | Path | None = None,
) -> CatalogueEntry | None:
    """The best code gnc knows for ``(K, d)``, with its certified value and provenance.

    Closed forms (simplex ETF, regular polygon, cross-polytope subsets) are built and certified
    on the fly; other shapes come from the shipped catalogue (``None`` when it has no entry).

    Args:
        num_classes: ``K >= 2``.
        feature_dim: ``d >= 2``.
        kind: ``"softmax"`` or ``"tammes"``.
        path: Catalogue file (default: the one shipped with gnc).

    Returns:
        A :class:`CatalogueEntry`, or ``None``.

    Raises:
        TypeError: On non-integer sizes.
        ValueError: On ``K < 2``, ``d < 2`` or an unknown ``kind``.

    Example:
        >>> e = best_known(6, 3)
        >>> e.source, e.name, round(e.rho, 12)
        ('closed-form', 'closed-form:cross-polytope-subset', 1.0)
        >>> e = best_known(240, 8)
        >>> e is None or (e.certified and e.rho >= 0.5 - 1e-6)
        True
    """
    K = check_int("num_classes", num_classes, minimum=2)
    d = check_int("feature_dim", feature_dim, minimum=2)
    if kind not in ("softmax", "tammes"):
        raise ValueError(f"Expected `kind` in ('softmax', 'tammes'), but got {kind!r}.")
    closed = closed_form_code(K, d)
    if closed is not None:
        code, name = closed
        return _certified_entry(code, kind, "closed-form", name=name)
    return load_catalogue(path).get((kind, K, d))


def _known_candidates(K: int, d: int) -> list[tuple[str, torch.Tensor]]:
    out = []
    for c in KNOWN_CONFIGURATIONS.values():
        if c.num_classes == K and c.feature_dim <= d:
            X = c.build(dtype=torch.float64)
            pad = torch.zeros(K, d - c.feature_dim, dtype=torch.float64)
            out.append((c.name, torch.cat([X, pad], dim=1)))
    return out


def improve_shape(
    num_classes: int,
    feature_dim: int,
    stored: dict[tuple[str, int, int], CatalogueEntry],
    *,
    time_limit: float,
    restarts: int,
    seed: int,
) -> list[str]:
    """Search both kinds for ``(K, d)`` and keep, per kind, the best certified candidate.

    Candidates: the stored entry, known configurations, the softmax search and the Tammes search
    (each search's code is a candidate for both kinds). Updates ``stored`` in place and returns
    the kinds whose entry changed.
    """
    K, d = num_classes, feature_dim
    searches: list[tuple[str, CodeResult]] = []
    for kind, solver in (("softmax", softmax_code), ("tammes", tammes_code)):
        res = solver(K, d, restarts=restarts, seed=seed, time_limit=time_limit)
        searches.append((kind, res))
    changed: list[str] = []
    kinds: tuple[Kind, Kind] = ("softmax", "tammes")
    for kind in kinds:
        cands: list[CatalogueEntry] = []
        for name, X in _known_candidates(K, d):
            cands.append(_certified_entry(storable(X), kind, "known-configuration", name=name))
        for skind, res in searches:
            cands.append(
                _certified_entry(
                    storable(res.code),
                    kind,
                    f"{skind}-search",
                    seed=seed,
                    restarts=res.restarts,
                    seconds=round(res.seconds, 3),
                )
            )
        best = max(cands, key=_score)
        old = stored.get((kind, K, d))
        if old is None or _score(best) > _score(old):
            stored[(kind, K, d)] = best
            changed.append(kind)
    return changed


def build_catalogue(
    shapes: Iterable[tuple[int, int]],
    path: str | Path | None = None,
    *,
    time_limit: float = 3.0,
    restarts: int = 4,
    seed: int = 0,
    redo: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Add (or improve) the catalogue entries of ``shapes``, saving after every shape.

    Resumable: a shape with both kinds stored is skipped unless ``redo``; a stored code is only
    replaced by a candidate with a larger certified value. Closed-form shapes are skipped.

    Args:
        shapes: ``(K, d)`` pairs.
        path: Catalogue file (default: the shipped one, i.e. rebuild in a source checkout).
        time_limit: Seconds per search (two searches per shape).
        restarts: Restarts per search.
        seed: Seed of the searches.
        redo: Search shapes that are already stored too.
        progress: tqdm progress bar on stderr.

    Returns:
        ``{"searched": n, "changed": n, "skipped": n, "seconds": s}``.
    """
    p = Path(path) if path is not None else CATALOGUE_PATH
    stored = load_catalogue(p)
    todo = []
    skipped = 0
    for K, d in shapes:
        done = ("softmax", K, d) in stored and ("tammes", K, d) in stored
        if closed_form_code(K, d) is not None or (done and not redo):
            skipped += 1
        else:
            todo.append((K, d))
    start = time.perf_counter()
    changed = 0
    for K, d in tqdm(todo, desc="catalogue", unit="shape", file=sys.stderr, disable=not progress):
        kinds = improve_shape(K, d, stored, time_limit=time_limit, restarts=restarts, seed=seed)
        if kinds:
            changed += 1
            _save(p, stored)
    return {
        "searched": len(todo),
        "changed": changed,
        "skipped": skipped,
        "seconds": time.perf_counter() - start,
    }


def compare_catalogue(
    softmax: Sequence[CatalogueEntry], tammes: Sequence[CatalogueEntry], *, tol: float = 1e-6
) -> list[dict[str, Any]]:
    """One row per shape with both kinds: ``rho``, ``T^2 / 2``, the class of the shape.

    Example:
        >>> from gnc.codes import best_known
        >>> a, b = best_known(5, 2), best_known(5, 2, kind="tammes")
        >>> compare_catalogue([a], [b])[0]["class"]
        'equal'
    """
    by_shape = {(e.num_classes, e.feature_dim): e for e in tammes}
    rows = []
    for s in softmax:
        t = by_shape.get((s.num_classes, s.feature_dim))
        if t is None:
            continue
        half_t2 = 1.0 - t.max_cosine
        diff = s.rho - half_t2
        same_distance = (1.0 - s.max_cosine) >= half_t2 - tol
        if abs(diff) <= tol:
            cls = "equal"
        elif diff > 0 and (same_distance or s.rho <= t.rho + tol):
            cls = "tammes-code"  # a Tammes code attains this rho
        elif diff > 0:
            cls = "candidate"
        else:  # cannot happen for a catalogue (the Tammes code is a softmax candidate)
            cls = "below"
        rows.append(
            {
                "K": s.num_classes,
                "d": s.feature_dim,
                "rho": s.rho,
                "T2_half": half_t2,
                "diff": diff,
                "rho_tammes_code": t.rho,
                "one_minus_maxcos_softmax": 1.0 - s.max_cosine,
                "rho_star_upper": rho_star_upper(s.num_classes, s.feature_dim),
                "certified": s.certified and t.certified,
                "softmax_source": s.source,
                "class": cls,
            }
        )
    return rows


def recertify(path: str | Path | None = None) -> int:
    """Re-certify every stored entry from its stored rows (after format or solver changes).

    Returns the number of entries.
    """
    p = Path(path) if path is not None else CATALOGUE_PATH
    stored = load_catalogue(p)
    for key, e in stored.items():
        provenance = {"name": e.name, "seed": e.seed, "restarts": e.restarts, "seconds": e.seconds}
        stored[key] = _certified_entry(e.code, e.kind, e.source, **provenance)
    _save(p, stored)
    return len(stored)


def recheck_candidates(
    path: str | Path | None = None,
    *,
    time_limit: float = 20.0,
    seeds: Sequence[int] = (1, 2),
    tol: float = 1e-6,
) -> list[dict[str, Any]]:
    """Search the candidate shapes of :func:`compare_catalogue` again with more time and seeds.

    Returns the rows of the shapes that were candidates before, recomputed afterwards (a shape
    whose class is still ``"candidate"`` survived the re-check).
    """
    p = Path(path) if path is not None else CATALOGUE_PATH
    stored = load_catalogue(p)

    def rows() -> list[dict[str, Any]]:
        def of(kind: str) -> list[CatalogueEntry]:
            chosen = (e for (k, _, _), e in stored.items() if k == kind)
            return sorted(chosen, key=lambda e: (e.feature_dim, e.num_classes))

        return compare_catalogue(of("softmax"), of("tammes"), tol=tol)

    shapes = [(r["K"], r["d"]) for r in rows() if r["class"] == "candidate"]
    for K, d in shapes:
        for seed in seeds:
            if improve_shape(K, d, stored, time_limit=time_limit, restarts=4, seed=seed):
                _save(p, stored)
    return [r for r in rows() if (r["K"], r["d"]) in shapes]


def _range(text: str) -> list[int]:
    a, _, b = text.partition(":")
    return list(range(int(a), int(b or a) + 1))


def _shapes(args: argparse.Namespace) -> list[tuple[int, int]]:
    shapes = [(K, d) for d in _range(args.dims) for K in _range(args.classes) if 2 * d < K]
    for s in args.shape or []:
        K, d = (int(v) for v in s.split(","))
        shapes.append((K, d))
    return shapes


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m gnc.codes {build,summary}``."""
    parser = argparse.ArgumentParser(prog="python -m gnc.codes", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="add or improve entries (resumable)")
    b.add_argument("--dims", default="3:12", help="dimension range d0:d1 (3:12)")
    b.add_argument("--classes", default="5:64", help="K range K0:K1, only K > 2d is searched")
    b.add_argument("--shape", action="append", metavar="K,D", help="extra shape (repeatable)")
    b.add_argument("--time-limit", type=float, default=3.0, help="seconds per search (3)")
    b.add_argument("--restarts", type=int, default=4)
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--redo", action="store_true", help="search stored shapes again")
    b.add_argument("--store", default=None, help="catalogue file (default: the shipped one)")
    r = sub.add_parser("recheck", help="search candidate counterexamples again, longer")
    r.add_argument("--time-limit", type=float, default=20.0)
    r.add_argument("--seeds", default="1:2", help="seed range (1:2)")
    r.add_argument("--store", default=None)
    c = sub.add_parser("recertify", help="re-certify every entry from its stored rows")
    c.add_argument("--store", default=None)
    s = sub.add_parser("summary", help="print the catalogue's coverage as JSON")
    s.add_argument("--store", default=None)
    args = parser.parse_args(argv)
    if args.command == "build":
        out = build_catalogue(
            _shapes(args),
            args.store,
            time_limit=args.time_limit,
            restarts=args.restarts,
            seed=args.seed,
            redo=args.redo,
            progress=True,
        )
    elif args.command == "recertify":
        out = {"entries": recertify(args.store)}
    elif args.command == "recheck":
        rows = recheck_candidates(args.store, time_limit=args.time_limit, seeds=_range(args.seeds))
        out = {"rechecked": rows, "still_candidates": sum(r["class"] == "candidate" for r in rows)}
    else:
        entries = load_catalogue(args.store)
        out = {
            "entries": len(entries),
            "softmax": sum(k == "softmax" for k, _, _ in entries),
            "tammes": sum(k == "tammes" for k, _, _ in entries),
            "uncertified": sum(not e.certified for e in entries.values()),
        }
    print(json.dumps(out))
    return 0
