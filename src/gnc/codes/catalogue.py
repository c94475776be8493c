"""A certified catalogue of the best softmax and Tammes codes gnc knows, shipped with the package.

(Over 600 lines: the store, its build tooling and their command line are one idea.)

Every entry is a ``(K, d)`` code stored as float32 rows together with the exact, certified
values of *those* rows (normalized in float64): ``rho`` with its certificate (``gap``,
``certified``) from :func:`gnc.geometry.one_vs_rest_distances`, and the max cosine. Its
provenance says where it came from: a known configuration (embedded by zero padding when it
lives in a smaller dimension), the softmax-code search (seed, restarts, seconds), or the other
kind's search (a Tammes code can be the better softmax code, and vice versa).

Shapes with a closed form (``K <= 2d`` or ``d <= 2``, see :func:`gnc.codes.closed_form_code`)
are not stored: :func:`best_known` builds and certifies them on the fly. Codes too large to ship
as rows are stored as a *recipe*: a deterministic integer construction rebuilt bit for bit on
load, with the certified values of exactly those rows (``kerdock-M``: the first ``K`` words of
the Kerdock code of length ``2^M``, :func:`gnc.geometry.kerdock.kerdock_code`, zero-padded to
``d``; certified by :func:`gnc.geometry.sharp_codes.tie_certificate`, as the exact solver is
slow on its thousands of tied neighbours per class). A stored SHA-256 of the rebuilt float32
rows guards the reconstruction.

Rebuild or extend (resumable: done shapes are skipped unless ``--redo``, and a stored code is
only ever replaced by one with a larger certified value)::

    python -m gnc.codes build --dims 3:12 --classes 5:64 --time-limit 3
    python -m gnc.codes build --shape 100,10 --shape 200,30 --time-limit 60
    python -m gnc.codes build --shape 37,3 --search tammes --restarts 0 --seeds 1:4 --redo
    python -m gnc.codes recipe --shape 10000,512 --recipe kerdock-8
    python -m gnc.codes recheck --time-limit 20   # candidate shapes, more seeds
    python -m gnc.codes merge other.npz           # the better entries of a build run elsewhere
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
import hashlib
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
from gnc.geometry.kerdock import kerdock_code
from gnc.geometry.sharp_codes import TieCertificate, tie_certificate
from gnc.geometry.slices import slice_starts
from gnc.io import Record, atomic_write
from gnc.sphere import normalize_rows

__all__ = [
    "CATALOGUE_PATH",
    "CatalogueEntry",
    "add_recipe",
    "best_known",
    "build_catalogue",
    "catalogue_entries",
    "compare_catalogue",
    "load_catalogue",
    "merge_catalogue",
    "recheck_candidates",
    "recipe_code",
    "recipe_entries",
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
        source: ``"closed-form"``, ``"known-configuration"``, ``"lattice-slice"``
            (:func:`gnc.geometry.slices.slice_starts`), ``"softmax-search"`` or
            ``"tammes-search"``.
        name: Closed form, configuration or slice name (``None`` for searches).
        seed: Seed of the search (``None`` otherwise).
        restarts: Restarts of the search (``None`` otherwise).
        seconds: Wall time of the search (``None`` otherwise).
        recipe: The deterministic construction the rows are rebuilt from (``None``: stored
            rows), e.g. ``"kerdock-8"``.
        rows_sha256: SHA-256 of the float32 rows of a recipe (checked on load).
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
    recipe: str | None = None
    rows_sha256: str | None = None

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


def recipe_code(recipe: str, num_classes: int, feature_dim: int) -> torch.Tensor:
    """The ``(K, d)`` float64 rows of a catalogue recipe (see the module docstring).

    Raises:
        ValueError: On an unknown recipe.

    Example:
        >>> recipe_code("kerdock-4", 20, 18).shape
        torch.Size([20, 18])
    """
    name, _, arg = recipe.partition("-")
    if name != "kerdock" or not arg.isdigit():
        raise ValueError(f"Expected `recipe` 'kerdock-M', but got {recipe!r}.")
    return kerdock_code(int(arg), num_classes, feature_dim)


def _sha256(code: torch.Tensor) -> str:
    return hashlib.sha256(code.to(torch.float32).numpy().tobytes()).hexdigest()


def recipe_entries(recipe: str, num_classes: int, feature_dim: int) -> list[CatalogueEntry]:
    """Both kinds' entries of a recipe code, certified by a tie certificate.

    The rows are exactly representable in float32 (``+-2^{-M/2}`` and zeros), so the values are
    those of the rebuilt rows.
    """
    code = recipe_code(recipe, num_classes, feature_dim)
    if not torch.equal(storable(code), code):
        raise ValueError(f"Expected recipe {recipe!r} to give float32-exact unit rows.")
    cert = tie_certificate(code)
    if not cert.certified:
        raise ValueError(f"Expected a tie certificate for {recipe!r}, but got gap {cert.gap}.")
    kinds: tuple[Kind, Kind] = ("softmax", "tammes")
    provenance = {
        "name": f"{recipe}: first {num_classes} codewords, zero-padded",
        "seconds": round(cert.seconds, 3),
        "recipe": recipe,
        "rows_sha256": _sha256(code),
    }
    return [_entry(cert, code, kind, "known-configuration", **provenance) for kind in kinds]


def add_recipe(
    recipe: str, num_classes: int, feature_dim: int, path: str | Path | None = None
) -> list[str]:
    """Store a recipe's entries where they beat the stored ones; returns the changed kinds."""
    p = Path(path) if path is not None else CATALOGUE_PATH
    stored = load_catalogue(p)
    changed = _take_better(stored, recipe_entries(recipe, num_classes, feature_dim))
    if changed:
        _save(p, stored)
    return [kind for kind, _, _ in changed]


def _take_better(
    stored: dict[tuple[str, int, int], CatalogueEntry], entries: Iterable[CatalogueEntry]
) -> list[tuple[str, int, int]]:
    """Put each entry into ``stored`` where it beats the stored one; returns the keys taken."""
    taken: list[tuple[str, int, int]] = []
    for e in entries:
        key = (e.kind, e.num_classes, e.feature_dim)
        old = stored.get(key)
        if old is None or _score(e) > _score(old):
            stored[key] = e
            taken.append(key)
    return taken


def _certified_entry(
    code: torch.Tensor, kind: Kind, source: str, **provenance: Any
) -> CatalogueEntry:
    """``code`` as an entry with its values certified by :func:`certify_code`.

    Candidates for storing pass :func:`storable` rows (the float32 values that get stored).
    """
    cert = certify_code(code, kind=kind, method=source, iterations=0, seconds=0.0, stop_reason="")
    return _entry(cert, code, kind, source, **provenance)


def _entry(
    cert: CodeResult | TieCertificate,
    code: torch.Tensor,
    kind: Kind,
    source: str,
    **provenance: Any,
) -> CatalogueEntry:
    """An entry holding ``code`` and the certified values of ``cert`` (of that code)."""
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
        min_pairwise_distance=math.sqrt(max(0.0, 2.0 - 2.0 * cert.max_cosine)),
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
            K, d = m["num_classes"], m["feature_dim"]
            if m.get("recipe") is not None:
                code = recipe_code(m["recipe"], K, d)
                if _sha256(code) != m["rows_sha256"]:
                    raise ValueError(f"Recipe {m['recipe']!r} did not rebuild the certified rows.")
            else:
                code = torch.from_numpy(z[_key(m["kind"], K, d)]).to(torch.float64)
            entry = CatalogueEntry(code=code, **m)
            out.append(((entry.kind, entry.num_classes, entry.feature_dim), entry))
    return tuple(out)


def _save(path: Path, entries: dict[tuple[str, int, int], CatalogueEntry]) -> None:
    ordered = sorted(entries.values(), key=lambda e: (e.kind, e.feature_dim, e.num_classes))
    arrays: dict[str, Any] = {
        _key(e.kind, e.num_classes, e.feature_dim): e.code.to(torch.float32).numpy()
        for e in ordered
        if e.recipe is None
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
    restarts: int | None,
    seed: int,
    search: Sequence[Kind] = ("softmax", "tammes"),
) -> list[str]:
    """Search ``(K, d)`` and keep, per kind, the best certified candidate.

    Candidates: the stored entry, known configurations and the searches of the kinds in
    ``search`` (each search's code is a candidate for both kinds). ``restarts=None`` runs as
    many restarts as ``time_limit`` allows. Updates ``stored`` in place and returns the kinds
    whose entry changed.
    """
    K, d = num_classes, feature_dim
    searches: list[tuple[str, CodeResult]] = []
    solvers = {"softmax": softmax_code, "tammes": tammes_code}
    # Each search first polishes the stored codes of both kinds for its own objective: a
    # softmax code polished for the max cosine can be the better Tammes code, and vice versa.
    starts = [e.code for k in ("softmax", "tammes") if (e := stored.get((k, K, d))) is not None]
    for kind in search:
        res = solvers[kind](
            K, d, restarts=restarts, seed=seed, time_limit=time_limit, start_codes=starts
        )
        searches.append((kind, res))
    changed: list[str] = []
    slices = slice_starts(K, d)
    kinds: tuple[Kind, Kind] = ("softmax", "tammes")
    for kind in kinds:
        cands: list[CatalogueEntry] = []
        for name, X in _known_candidates(K, d):
            cands.append(_certified_entry(storable(X), kind, "known-configuration", name=name))
        for name, X in slices:
            cands.append(_certified_entry(storable(X), kind, "lattice-slice", name=name))
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
        if not cands:  # no search and no known configuration of this shape
            continue
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
    restarts: int | None = 4,
    seed: int | Sequence[int] = 0,
    redo: bool = False,
    search: Sequence[Kind] = ("softmax", "tammes"),
    progress: bool = False,
) -> dict[str, Any]:
    """Add (or improve) the catalogue entries of ``shapes``, saving after every shape.

    Resumable: a shape with both kinds stored is skipped unless ``redo``; a stored code is only
    replaced by a candidate with a larger certified value. Closed-form shapes are skipped.

    Args:
        shapes: ``(K, d)`` pairs.
        path: Catalogue file (default: the shipped one, i.e. rebuild in a source checkout).
        time_limit: Seconds per search (one search per kind in ``search``, shape and seed).
        restarts: Restarts per search (``None``: as many as ``time_limit`` allows).
        seed: Seed of the searches, or several (each shape is searched once per seed).
        redo: Search shapes that are already stored too.
        search: The kinds of search to run (both kinds' entries take the better code anyway;
            none: the known configurations only).
        progress: tqdm progress bar on stderr.

    Returns:
        ``{"searched": n, "changed": n, "skipped": n, "seconds": s}`` (``searched`` counts
        shapes times seeds).
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
    seeds = [seed] if isinstance(seed, int) else list(seed)
    runs = [(K, d, s) for s in seeds for K, d in todo]
    start = time.perf_counter()
    changed = 0
    for K, d, s in tqdm(
        runs, desc="catalogue", unit="shape", file=sys.stderr, disable=not progress
    ):
        kinds = improve_shape(
            K, d, stored, time_limit=time_limit, restarts=restarts, seed=s, search=search
        )
        if kinds:
            changed += 1
            _save(p, stored)
    return {
        "searched": len(runs),
        "changed": changed,
        "skipped": skipped,
        "seconds": time.perf_counter() - start,
    }


def merge_catalogue(
    other: str | Path, path: str | Path | None = None
) -> list[tuple[str, int, int]]:
    """Take every entry of the catalogue file ``other`` that beats the one in ``path``.

    For builds run apart (another machine, a scratch file while the shipped one changes): the
    same rule as the build, a stored code is only replaced by one with a larger certified value.

    Returns:
        The ``(kind, K, d)`` keys taken from ``other``.
    """
    p = Path(path) if path is not None else CATALOGUE_PATH
    stored = load_catalogue(p)
    taken = _take_better(stored, (e for _, e in sorted(load_catalogue(other).items())))
    if taken:
        _save(p, stored)
    return taken


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
    recipes: dict[tuple[str, int, int], list[CatalogueEntry]] = {}
    for key, e in stored.items():
        if e.recipe is not None:
            shape = (e.recipe, e.num_classes, e.feature_dim)
            recipes[shape] = recipes.get(shape) or recipe_entries(*shape)
            stored[key] = next(r for r in recipes[shape] if r.kind == e.kind)
            continue
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


_SEARCHES: dict[str, tuple[Kind, ...]] = {
    "both": ("softmax", "tammes"),
    "softmax": ("softmax",),
    "tammes": ("tammes",),
    "none": (),
}


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
    """``python -m gnc.codes {build,recipe,recheck,recertify,merge,summary}``."""
    parser = argparse.ArgumentParser(prog="python -m gnc.codes", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="add or improve entries (resumable)")
    b.add_argument("--dims", default="3:12", help="dimension range d0:d1 (3:12)")
    b.add_argument("--classes", default="5:64", help="K range K0:K1, only K > 2d is searched")
    b.add_argument("--shape", action="append", metavar="K,D", help="extra shape (repeatable)")
    b.add_argument("--time-limit", type=float, default=3.0, help="seconds per search (3)")
    b.add_argument("--restarts", type=int, default=4, help="per search; 0: while time lasts")
    b.add_argument("--seeds", default="0", help="seed range s0:s1, one search per seed (0)")
    b.add_argument(
        "--search",
        choices=("both", "softmax", "tammes", "none"),
        default="both",
        help="searches to run (none: known configurations only)",
    )
    b.add_argument("--redo", action="store_true", help="search stored shapes again")
    b.add_argument("--store", default=None, help="catalogue file (default: the shipped one)")
    r = sub.add_parser("recheck", help="search candidate counterexamples again, longer")
    r.add_argument("--time-limit", type=float, default=20.0)
    r.add_argument("--seeds", default="1:2", help="seed range (1:2)")
    r.add_argument("--store", default=None)
    c = sub.add_parser("recertify", help="re-certify every entry from its stored rows")
    c.add_argument("--store", default=None)
    rc = sub.add_parser("recipe", help="store a deterministic construction (no rows)")
    rc.add_argument("--shape", required=True, metavar="K,D")
    rc.add_argument("--recipe", required=True, help="kerdock-M")
    rc.add_argument("--store", default=None)
    m = sub.add_parser("merge", help="take the better entries of another catalogue file")
    m.add_argument("other", help="catalogue file to take entries from")
    m.add_argument("--store", default=None)
    s = sub.add_parser("summary", help="print the catalogue's coverage as JSON")
    s.add_argument("--store", default=None)
    args = parser.parse_args(argv)
    if args.command == "build":
        out = build_catalogue(
            _shapes(args),
            args.store,
            time_limit=args.time_limit,
            restarts=args.restarts or None,
            seed=_range(args.seeds),
            redo=args.redo,
            search=_SEARCHES[args.search],
            progress=True,
        )
    elif args.command == "recipe":
        K, d = (int(v) for v in args.shape.split(","))
        out = {"changed": add_recipe(args.recipe, K, d, args.store)}
    elif args.command == "merge":
        out = {"taken": [list(k) for k in merge_catalogue(args.other, args.store)]}
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
