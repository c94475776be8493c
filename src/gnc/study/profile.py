"""Profiles: the sizes of every section of the study, one small frozen record per section.

A :class:`Profile` composes the run-wide settings (device, data folders, the softmax-code
solver's budget) with one record per section. The named profiles (:data:`PROFILES`):

- ``quick``: CPU minutes on the embedded data (the main job);
- ``paper``: the paper's sizes on a GPU (CIFAR-100 when present, else a CJK stand-in);
- ``paper-short``: the training and heads sections with the paper's ResNet18, 60 epochs;
- ``tiny``: test-sized (seconds), not offered by the CLI.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Literal, TypedDict

from gnc.io import dump_json
from gnc.study.paper import OPTIMAL_LINES

__all__ = [
    "PROFILES",
    "AssignmentProfile",
    "CodesProfile",
    "HeadsProfile",
    "LMProfile",
    "PretrainedProfile",
    "Profile",
    "TammesProfile",
    "TrainRunProfile",
    "TrainingProfile",
    "UFMProfile",
    "get_profile",
    "profile_id",
]


@dataclasses.dataclass(frozen=True)
class CodesProfile:
    """1. Closed forms, known optimal codes and the paper's lines.

    Attributes:
        polygon_sizes: K of the regular K-gons (d = 2).
        simplex_dims: d of the simplex ETFs (K = d + 1).
        cross_dims: d of the cross-polytopes (K = 2d).
        known_configs: Names of :func:`gnc.geometry.known_configuration`.
        paper_lines: ``(d, K)`` of the paper's lines to solve a softmax code for.
    """

    polygon_sizes: tuple[int, ...] = (3, 4, 5, 6, 8, 12)
    simplex_dims: tuple[int, ...] = (2, 3, 5, 10)
    cross_dims: tuple[int, ...] = (2, 3, 5, 10)
    known_configs: tuple[str, ...] = ()
    paper_lines: tuple[tuple[int, int], ...] = ((10, 100), (512, 1000))


@dataclasses.dataclass(frozen=True)
class TammesProfile:
    """2. Softmax vs Tammes codes on S^2: the sizes K and each solve's time limit (s)."""

    sizes: tuple[int, ...] = (4, 5, 6, 7, 8, 12)
    time_limit: float = 3.0


@dataclasses.dataclass(frozen=True)
class UFMProfile:
    """3. The UFM temperature sweep: ``(K, d)`` settings, temperatures, samples, steps."""

    settings: tuple[tuple[int, int], ...] = ((8, 3), (30, 5))
    taus: tuple[float, ...] = (1.0, 1 / 3, 1 / 5, 1 / 10, 1 / 20, 1 / 50)
    samples: int = 1
    steps: int = 1500


@dataclasses.dataclass(frozen=True)
class TrainRunProfile:
    """Data, network and optimizer of the training runs of a section (4. and 5.).

    Attributes:
        dataset: ``"ocr_features"`` (frozen PP-OCRv6 features of rendered characters),
            ``"cjk"``, ``"cifar100"`` or ``"synthetic"``.
        data_file: A prepared ``ArrayDataset`` (.npz) used instead when it exists, e.g. on a
            machine without the fonts (:func:`gnc.study.runs.prepare_training_data`).
        num_classes: K.
        feature_dim: d.
        fallback_classes: K of the CJK stand-in when ``cifar100`` is missing (0: skip).
        augmentations: Rendered variants per CJK training glyph.
        model: ``"mlp"``, ``"small_cnn"`` or ``"resnet18"``; ``width`` its width.
        epochs, batch_size, lr: The optimizer's settings.
        reference_code: Solve the softmax code of ``(K, d)`` to relate GNC2 to.
        ocr_train_fonts, ocr_test_fonts, ocr_train_repeats, ocr_test_repeats: The rendered
            characters behind ``ocr_features``.
    """

    dataset: str = "ocr_features"
    data_file: str = ""
    num_classes: int = 100
    feature_dim: int = 10
    fallback_classes: int = 0
    augmentations: int = 2
    model: str = "mlp"
    width: int = 128
    epochs: int = 120
    batch_size: int = 128
    lr: float = 0.05
    reference_code: bool = True
    ocr_train_fonts: tuple[str, ...] = (
        "gbsn00lp",
        "uming",
        "wqy-zenhei",
        "NotoSansCJK-Regular",
        "LXGWWenKai-Regular",
    )
    ocr_test_fonts: tuple[str, ...] = ("gkai00mp", "NotoSerifCJK-Regular")
    ocr_train_repeats: int = 4
    ocr_test_repeats: int = 2


@dataclasses.dataclass(frozen=True)
class TrainingProfile(TrainRunProfile):
    """4. Training curves: one run per temperature and seed, evaluated every few epochs."""

    taus: tuple[float, ...] = (1.0, 1 / 5, 1 / 7)
    seeds: tuple[int, ...] = (0, 1, 2)
    eval_every: int = 4


@dataclasses.dataclass(frozen=True)
class HeadsProfile(TrainRunProfile):
    """5. Learnable vs CMF vs fixed-code heads at one temperature (rendered glyphs, small CNN)."""

    dataset: str = "cjk"
    model: str = "small_cnn"
    width: int = 16
    epochs: int = 15
    lr: float = 0.02
    tau: float = 0.1
    cmf_betas: tuple[float, ...] = (0.1, 0.9)


@dataclasses.dataclass(frozen=True)
class AssignmentProfile:
    """6. The assignment problem: four Fashion-MNIST classes (two similar pairs) in d = 2.

    ``tau`` = 1: at tau <= 0.2 this small setting often merges rows (no 4-gon) in 8 epochs.
    """

    classes: tuple[int, ...] = (0, 6, 7, 9)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4, 5, 6, 7)
    per_class: int = 1000
    epochs: int = 8
    tau: float = 1.0
    model: str = "mlp"
    width: int = 256
    lr: float = 0.05


@dataclasses.dataclass(frozen=True)
class PretrainedProfile:
    """7. Pretrained heads and the features of their networks.

    Attributes:
        head_sources: Heads to measure (registry names or K x d files).
        sample_classes: Classes sampled for the median ``D_k``.
        time_limit: Seconds of the softmax-code solver at the reduced ``(K', d')``.
        feature_sources: Networks run on real data, features grouped by predicted class.
        feature_ocr_chars, feature_ocr_repeats: Rendered characters for the OCR network.
        feature_lm_tokens: Tokens of text for the language model.
        feature_min_samples: Classes predicted fewer times are left out.
    """

    head_sources: tuple[str, ...] = ("ocr",)
    sample_classes: int = 64
    time_limit: float = 10.0
    feature_sources: tuple[str, ...] = ("ocr",)
    feature_ocr_chars: int = 200
    feature_ocr_repeats: int = 3
    feature_lm_tokens: int = 4096
    feature_min_samples: int = 10


@dataclasses.dataclass(frozen=True)
class LMProfile:
    """8. A tiny language model on the KJV: heads as ``(kind, tau)``; ``()`` skips the section."""

    heads: tuple[tuple[Literal["linear", "normalized"], float], ...] = (
        ("linear", 1.0),
        ("normalized", 0.1),
    )
    num_classes: int = 2048
    feature_dim: int = 32
    epochs: int = 4
    max_chars: int | None = 1_000_000
    train_positions: int | None = 50_000
    metric_samples: int = 5000


@dataclasses.dataclass(frozen=True)
class Profile:
    """Every setting of one study run.

    Attributes:
        name: The profile's name (part of :func:`profile_id`).
        device: ``"cpu"``, ``"auto"`` (CUDA when present) or a torch device string.
        data_root: Folder of data sets and caches.
        fashion_mnist_dir: Folder of Fashion-MNIST (the assignment section).
        code_time_limit: Seconds of each softmax-code solve (codes, UFM and training references).
        code_restarts: Random restarts of the code solvers (codes and Tammes sections).
    """

    name: str
    device: str = "cpu"
    data_root: str = "data"
    fashion_mnist_dir: str = "/usr/share/datasets/fashion-mnist"
    code_time_limit: float = 20.0
    code_restarts: int = 2
    codes: CodesProfile = CodesProfile()
    tammes: TammesProfile = TammesProfile()
    ufm: UFMProfile = UFMProfile()
    training: TrainingProfile = TrainingProfile()
    heads: HeadsProfile = HeadsProfile()
    assignment: AssignmentProfile = AssignmentProfile()
    pretrained: PretrainedProfile = PretrainedProfile()
    lm: LMProfile = LMProfile()


_QUICK_KNOWN = ("icosahedron", "cell24", "clebsch_5_16", "schlaefli_6_27", "gosset_7_56")


class _Network(TypedDict):
    model: str
    width: int
    batch_size: int
    lr: float


class _TinyRun(TypedDict):
    dataset: str
    num_classes: int
    feature_dim: int
    model: str
    width: int
    epochs: int
    reference_code: bool


#: The paper's network and optimizer for CIFAR-100 (ResNet18, batch 250, lr 0.1).
_RESNET18: _Network = {"model": "resnet18", "width": 64, "batch_size": 250, "lr": 0.1}
#: The runs of the tiny profile: two epochs of an MLP on 6 synthetic classes in d = 3.
_TINY_RUN: _TinyRun = {
    "dataset": "synthetic",
    "num_classes": 6,
    "feature_dim": 3,
    "model": "mlp",
    "width": 32,
    "epochs": 2,
    "reference_code": False,
}

#: The named profiles of ``gnc reproduce --profile``: quick, paper, paper-short and tiny.
PROFILES: dict[str, Profile] = {
    "quick": Profile(name="quick", codes=CodesProfile(known_configs=_QUICK_KNOWN)),
    "paper": Profile(
        name="paper",
        device="auto",
        code_time_limit=600.0,
        code_restarts=8,
        codes=CodesProfile(
            known_configs=(
                "icosahedron",
                "cell24",
                "cell600",
                "clebsch_5_16",
                "schlaefli_6_27",
                "gosset_7_56",
                "e8_roots",
            ),
            paper_lines=tuple(OPTIMAL_LINES),
        ),
        tammes=TammesProfile(
            sizes=(4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 16, 20, 24), time_limit=30.0
        ),
        ufm=UFMProfile(settings=((8, 3), (30, 5), (100, 10)), samples=5, steps=20000),
        training=TrainingProfile(
            dataset="cifar100",
            fallback_classes=3755,
            epochs=200,
            taus=(1.0, 1 / 5, 1 / 6, 1 / 7),
            seeds=(0,),
            eval_every=10,
            **_RESNET18,
        ),
        heads=HeadsProfile(
            dataset="cifar100",
            fallback_classes=3755,
            epochs=200,
            **_RESNET18,
        ),
        assignment=AssignmentProfile(
            seeds=tuple(range(16)), per_class=6000, epochs=30, model="small_cnn", width=32
        ),
        pretrained=PretrainedProfile(
            head_sources=("ocr", "whisper", "smollm2"),
            sample_classes=1024,
            time_limit=120.0,
            feature_sources=("ocr", "smollm2"),
            feature_ocr_chars=0,
            feature_lm_tokens=32768,
        ),
        lm=LMProfile(
            heads=(
                ("linear", 1.0),
                ("normalized", 1 / 7),
                ("normalized", 0.1),
                ("normalized", 0.02),
            ),
            epochs=10,
            max_chars=None,
            train_positions=300_000,
            metric_samples=20_000,
        ),
    ),
    # the paper profile's telling part in ~5 min of one GPU: the training and heads sections with
    # the paper's ResNet18 (d = 10, K = 100, batch 250, lr 0.1) on rendered CJK glyphs, 60 epochs;
    # a machine without the CJK fonts reads them from data/cjk100.npz (prepare_training_data)
    "paper-short": Profile(
        name="paper-short",
        device="auto",
        code_time_limit=60.0,
        training=TrainingProfile(
            dataset="cjk",
            data_file="data/cjk100.npz",
            epochs=60,
            seeds=(0,),
            eval_every=5,
            **_RESNET18,
        ),
        heads=HeadsProfile(
            dataset="cjk",
            data_file="data/cjk100.npz",
            epochs=60,
            **_RESNET18,
        ),
    ),
    # test-sized (seconds); not offered by the CLI
    "tiny": Profile(
        name="tiny",
        code_time_limit=2.0,
        code_restarts=1,
        codes=CodesProfile(
            polygon_sizes=(3, 5),
            simplex_dims=(3,),
            cross_dims=(3,),
            known_configs=("icosahedron",),
            paper_lines=((2, 6),),
        ),
        tammes=TammesProfile(sizes=(4, 6), time_limit=1.0),
        ufm=UFMProfile(settings=((4, 2),), taus=(1.0, 0.2), samples=1, steps=200),
        training=TrainingProfile(taus=(1.0, 0.2), seeds=(0, 1), eval_every=1, **_TINY_RUN),
        heads=HeadsProfile(cmf_betas=(0.5,), **_TINY_RUN),
        assignment=AssignmentProfile(seeds=(0,), per_class=40, epochs=1),
        pretrained=PretrainedProfile(head_sources=(), feature_sources=()),
        lm=LMProfile(heads=()),
    ),
}


def get_profile(profile: Profile | str) -> Profile:
    """``profile`` itself, or the named profile of :data:`PROFILES`.

    Example:
        >>> get_profile("tiny").name
        'tiny'
        >>> get_profile("huge")
        Traceback (most recent call last):
        ValueError: Expected `profile` in ['paper', 'paper-short', 'quick', 'tiny'], but got 'huge'.
    """
    if isinstance(profile, Profile):
        return profile
    if profile not in PROFILES:
        raise ValueError(f"Expected `profile` in {sorted(PROFILES)}, but got {profile!r}.")
    return PROFILES[profile]


def profile_id(profile: Profile) -> str:
    """Name plus a hash of every setting: stored sections are reused only under the same id.

    Example:
        >>> profile_id(PROFILES["tiny"]).startswith("tiny-")
        True
    """
    digest = hashlib.sha256(dump_json(dataclasses.asdict(profile)).encode()).hexdigest()
    return f"{profile.name}-{digest[:12]}"
