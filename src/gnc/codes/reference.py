"""Reference values for the code searches: best-known Tammes codes on ``S^2`` and sharp codes.

``TAMMES_S2_DEGREES[N]`` is the largest known minimal angular separation (degrees) of ``N``
points on ``S^2`` from N. J. A. Sloane (with R. H. Hardin, W. D. Smith and others), *Tables of
spherical codes* (packings in three dimensions), for ``N = 4..50`` and ``N = 55, 60, ..., 130``;
values for ``N <= 14`` and ``N = 24`` are proven optima (Fejes Toth; Schuette and van der
Waerden; Danzer; Robinson; Musin and Tarasov).

``SHARP_CODES`` lists the sharp configurations of Cohn and Kumar ("Universally optimal
distribution of points on spheres", JAMS 2007) with ``K <= 300`` and ``d <= 24`` beyond the
simplex and cross-polytope, with their max cosine ``s``; for these codes
``rho = 1 - s`` (Jiang et al., "Generalized Neural Collapse for a Large Number of Classes",
ICML 2024, observe them as softmax codes).
"""

from __future__ import annotations

import math

__all__ = ["SHARP_CODES", "TAMMES_S2_DEGREES", "tammes_s2_best_known_distance"]

_NS = [*range(4, 51), *range(55, 131, 5)]
_DEGREES = (
    109.4712206, 90.0000000, 90.0000000, 77.8695421, 74.8584922, 70.5287794, 66.1468220,
    63.4349488, 63.4349488, 57.1367031, 55.6705700, 53.6578501, 52.2443957, 51.0903285,
    49.5566548, 47.6919141, 47.4310362, 45.6132231, 44.7401612, 43.7099642, 43.6907671,
    41.6344612, 41.0376616, 40.6776007, 39.3551436, 38.7136512, 38.5971159, 37.7098291,
    37.4752140, 36.2545530, 35.8077844, 35.3198076, 35.1897322, 34.4224080, 34.2506607,
    33.4890466, 33.1583563, 32.7290944, 32.5063863, 32.0906244, 31.9834230, 31.3230814,
    30.9591635, 30.7818159, 30.7627855, 29.9235851, 29.7529564, 28.2627914, 27.1928300,
    26.0698299, 25.1709200, 24.3017225, 23.5530672, 22.7791621, 22.1540232, 21.5945501,
    21.0312020, 20.5388524, 20.1113276, 19.6239931, 19.3240201, 18.8448151, 18.5103522,
)  # fmt: skip

#: Best-known minimal angular separation (degrees) of ``N`` points on ``S^2``.
TAMMES_S2_DEGREES: dict[int, float] = dict(zip(_NS, _DEGREES, strict=True))

#: ``(K, d) -> (name, max cosine)`` of the sharp codes with ``K <= 300``, ``d <= 24``.
SHARP_CODES: dict[tuple[int, int], tuple[str, float]] = {
    (12, 3): ("icosahedron", 1.0 / math.sqrt(5.0)),
    (120, 4): ("600-cell", (1.0 + math.sqrt(5.0)) / 4.0),
    (16, 5): ("Clebsch (halved 5-cube)", 0.2),
    (27, 6): ("Schlaefli", 0.25),
    (56, 7): ("Gosset (E7*)", 1.0 / 3.0),
    (240, 8): ("E8 roots", 0.5),
    (112, 21): ("isotropic subspaces q = 3", 1.0 / 9.0),
    (162, 21): ("SRG(162, 56, 10, 24)", 1.0 / 7.0),
    (100, 22): ("Higman-Sims", 1.0 / 11.0),
    (275, 22): ("McLaughlin", 1.0 / 6.0),
}


def tammes_s2_best_known_distance(num_points: int) -> float:
    """Best-known minimum chord ``2 sin(theta / 2)`` of ``N`` points on ``S^2`` (table above).

    Raises:
        KeyError: If ``N`` is not tabulated.

    Example:
        >>> round(tammes_s2_best_known_distance(12), 9)  # the icosahedron
        1.051462224
    """
    theta = math.radians(TAMMES_S2_DEGREES[num_points])
    return 2.0 * math.sin(theta / 2.0)
