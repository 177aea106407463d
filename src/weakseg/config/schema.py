"""Experiment configuration: typed dataclasses, one section per concern.

Every field has a default; a YAML file and ``--set key=value`` overrides only say what differs. The
resolved config is written to ``RUN_DIR/config.yaml`` and stored as a plain dict in every checkpoint.
Method sections (``genseg``, ``ae``, ``mean_teacher``, ``smile``, ``smiler``, ``marginal``) are read only by
their method.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from weakseg.config.choices import (
    Amp, CandidateSet, CheckpointName, CompileMode, EvalInclude, ExclusionMode, InitName, LabeledPool, LabelUnit,
    LrScheduleName, NonFinite, Normalisation, OnDevice, RankScope, ScoreName, SelectMode, ValidReference,
)


@dataclass
class MnistConfig:
    """Cluttered-MNIST generator settings (``genseg.md`` §9, presets §16)."""

    source: str | None = None          # folder with the four MNIST IDX files; None = embedded 5k digits
    canvas: int = 48
    n_clutter: int = 8
    size_clutter: int = 10
    noise_sigma: float = 0.01
    labeled_digits: list[int] = field(default_factory=lambda: [9])   # classes allowed to carry masks
    labeled_fraction: float = 0.01     # of the whole training pool (``genseg.md`` §9.2), counted in label_unit
    labeled_count: int | None = None   # overrides labeled_fraction when set
    label_unit: LabelUnit = "source"   # what the fraction counts: source digits (the reference) | canvas
    labeled_sources: int | None = None  # label_unit=canvas: distinct labelled digits; None = all eligible, <= count
    n_train: int | None = None         # samples per split; None = the digit fold's size
    n_valid: int | None = None
    n_test: int | None = None


@dataclass
class BratsConfig:
    """A dataset made by ``weakseg convert brats`` (``genseg.md`` §10); docs/brats.md."""

    root: str | None = None            # the converted dataset folder
    eval_include: EvalInclude = "pa"   # valid/test rows of the slice metrics: pa = P and A slices (A: fp rates)
    # Whole-volume validation (weakseg.evaluation.brats_volumes), logged as volume/...; the brats preset selects
    # best.pt on volume/dice_pooled.
    volume_every: int = 1              # at every N-th evaluation (and the last); 0 = never
    volume_patients: int = 0           # first N validation patients (0 = all): the cheap subset
    # Training augmentation (genseg.md §10.2 values; weakseg.data.augment, MONAI); the brats preset turns it on.
    augment: bool = False
    augment_rotate_deg: float = 3.0    # rotation: uniform in +-deg
    augment_zoom: float = 0.1          # zoom: factor 1 + uniform(-z, z)
    augment_warp_px: float = 5.0       # elastic warp: control-point offsets ~ N(0, px) on a 3x3 grid
    augment_flips: bool = True         # left-right and up-down flips, each with probability 1/2
    augment_shift: float = 0.1         # intensity shift: uniform(-s, s), brain voxels only
    augment_scale: float = 0.0         # intensity scale: factor 1 + uniform(-s, s) (0 = off, as the reference)


@dataclass
class OrgansConfig:
    """A partially annotated multi-organ dataset in the nnU-Net raw layout (``smile.md``)."""

    root: str | None = None
    classes: list[str] = field(default_factory=list)   # empty = every label of dataset.json
    status_overlay: str | None = None  # overlay JSON (weakseg.data.simulate) applied after dataset.json
    fold: int = 0                      # test fold of the cross-validation over volumes
    n_folds: int = 5
    n_valid: int = 2                   # volumes held out of the training folds for validation
    hu_window: list[float] = field(default_factory=lambda: [-175.0, 250.0])
    full_labels: bool = False          # expose hidden ground truth to training (the oracle only)
    # Reference of the validation volumes: visible (their annotations after simulation; unannotated classes
    # unscored) | truth (their full, withheld ground truth: for choosing settings in a simulation study
    # without touching the test fold; training never sees it).
    valid_reference: ValidReference = "visible"


@dataclass
class DataConfig:
    name: str = "mnist"                # dataset kind: mnist | brats | organs
    preset: str | None = None          # a file configs/presets/<preset>.yaml applied under this config
    data_seed: int = 0                 # labelled subset, validation and test sets
    class_index: int = 0               # class of interest for the P / A pools
    on_device: OnDevice = "auto"       # in-memory sets on the GPU once: auto (if < 1/4 of GPU memory) | always | never
    mnist: MnistConfig = field(default_factory=MnistConfig)
    brats: BratsConfig = field(default_factory=BratsConfig)
    organs: OrgansConfig = field(default_factory=OrgansConfig)


@dataclass
class ModelConfig:
    name: str = "seg_only"             # a name from weakseg.models.registry.list_models()
    width: float = 1.0                 # multiplies every channel count (1.0 = published width)
    depth: int = 4                     # stride-2 stages: 4 for 48x48, 5 for 128x128 and BraTS
    kwargs: dict[str, Any] = field(default_factory=dict)   # variant switches passed to the model


@dataclass
class TrainConfig:
    steps: int = 2000                  # optimiser steps (one step = every step function once)
    batch_size: int = 8                # images per stream: B P images (+ B A images where used); the GLOBAL
                                       # batch under torchrun (each of N processes takes B / N)
    lr: float = 1e-3
    lr_discriminator: float = 1e-3
    lr_schedule: LrScheduleName = "constant"   # constant (the reference) | poly: lr·(1 - t/steps)^lr_poly_exponent
    lr_poly_exponent: float = 0.9      # nnU-Net's exponent
    weight_decay: float = 1e-4         # coupled L2 through Adam's weight_decay, as the reference
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    amsgrad: bool = True
    seed: int = 0                      # model init, batch order, noise
    device: str = "auto"               # auto | cpu | cuda | cuda:N
    amp: Amp = "auto"                  # auto (bf16 on CUDA, fp32 on CPU) | bf16 | off
    log_every: int = 25
    eval_every: int = 250
    checkpoint_every: int = 250
    select_metric: str = "dice_soft_global"   # validation metric for best.pt (the reference criterion)
    select_mode: SelectMode = "max"    # max | min
    nonfinite: NonFinite = "stop"      # stop: end the run naming the term; skip: drop the update
    max_skipped: int = 10              # skip: consecutive skipped steps before rolling back to last.pt (0 = never)
    max_rollbacks: int = 3             # skip: rollbacks before the run gives up
    min_labeled_per_batch: int = 0     # oversample labelled P images (0 = as the reference)
    labeled_pool: LabeledPool = "labelled"   # pool of those images: labelled (class_index) | any_positive (multi-class)
    # Speed switches (README "Performance"); none changes what is learned beyond float rounding.
    compile: bool = False              # torch.compile every model (falls back to eager with a warning)
    compile_mode: CompileMode = "default"  # default | reduce-overhead | max-autotune (torch.compile's mode)
    compile_backend: str = "inductor"  # torch.compile backend; "eager"/"aot_eager" only trace (for tests)
    channels_last: bool = False        # NHWC (NDHWC in 3D) weights and images; pays off with bf16 on GPU
    pin_memory: bool = True            # CUDA: pin host batches so the copy to the GPU is asynchronous
    # A checkpoint whose model weights start the run (weights only: new optimisers, step 0); read once, at
    # the start, never on --resume. A relative path is read from the run folder, so a moved run still says
    # where its weights came from.
    init_from: str | None = None


@dataclass
class EvalConfig:
    batch_size: int = 100
    threshold: float = 0.5
    checkpoint: CheckpointName = "best"  # best | last


@dataclass
class GenSegConfig:
    """GenSeg loss weights and switches (``genseg.md`` §5-7)."""

    lambda_adv: float = 3.0
    lambda_rec: float = 50.0
    lambda_cyc: float = 50.0
    lambda_lat: float = 1.0
    lambda_seg: float = 0.01


@dataclass
class AEConfig:
    lambda_rec: float = 1.0
    lambda_seg: float = 1.0


@dataclass
class MeanTeacherConfig:
    lambda_seg: float = 1.0
    lambda_con: float = 0.01
    ema_decay: float = 0.99
    noise_std: float = 0.1             # independent input noise per branch
    faithful: bool = False             # True: student and teacher see identical inputs (the reference)


@dataclass
class SmileConfig:
    """SMILE loss (smile.md §5): weighted BCE normalisation, optional masked Dice and pos_weight."""

    normalisation: Normalisation = "known_mean"  # known_mean | all_mean | class_mean | sum
    dice_weight: float = 0.0           # soft Dice term: SMILE's masked Dice, and the softmax baselines' Dice
    pos_weight: list[float] | None = None   # per class, on the positive BCE term
    ce_weight: list[float] | None = None    # softmax baselines: per-class CE weight, K+1 values, background first
    # Read sigmoid outputs as sigmoid(z - log pos_weight_k): with pos_weight w_k the BCE optimum is
    # z = logit(p) + log w_k, so raw sigmoids of different classes are not comparable (a raw 0.5 means a true
    # 1/(1 + w_k)). Used by decoding (evaluation, pictures) and SMILEr's candidate scores alike; no effect
    # without pos_weight. false: the raw sigmoids, as runs stored before this key existed were decoded (their
    # stored configs load with false).
    calibrate_pos_weight: bool = True


@dataclass
class MarginalConfig:
    """Marginal + exclusion loss (Shi et al., MedIA 2021; smile.md §13); CE weights and the Dice weight are
    the softmax baselines' ``smile.ce_weight`` and ``smile.dice_weight``."""

    exclusion_weight: float = 0.2      # 0 = marginal loss only; 0.2 keeps PLS4MIS's CE : exclusion ratio
    exclusion: ExclusionMode = "dice"  # dice (the paper's exclusive Dice) | log (mean -log(1 - p_k) over E_k)


@dataclass
class SmilerConfig:
    """SMILEr rounds (smile.md §8.3, §9.1); see weakseg.relabel.selection.SmilerOptions."""

    rounds: int = 3
    gamma_max: float = 1.0
    tau: float = 0.5
    score: ScoreName = "prob"          # prob | mc_std
    candidate_set: CandidateSet = "predicted_positive"
    rank_scope: RankScope = "image"    # image | volume | global
    cumulative: bool = True
    propagate_negatives: bool = False
    restrict_to_present: bool = False
    init: InitName = "continue"        # continue (m_{t-1}) | smile (m_0) | scratch (fresh init, as the paper)
    round_steps: int | None = None     # steps of rounds 1..T (None: train.steps); every round has a new optimiser
    mc_samples: int = 10
    mc_dropout_p: float | None = None  # drop probability during the MC passes; null: model.kwargs.dropout
    round0_run: str | None = None      # a finished SMILE run folder to use as round 0 (same data and model)
    round: int = 0                     # set by the round driver (weakseg.relabel.rounds): which round this run is


@dataclass
class Config:
    method: str = "seg_only"           # a name from weakseg.methods.list_methods()
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    genseg: GenSegConfig = field(default_factory=GenSegConfig)
    ae: AEConfig = field(default_factory=AEConfig)
    mean_teacher: MeanTeacherConfig = field(default_factory=MeanTeacherConfig)
    smile: SmileConfig = field(default_factory=SmileConfig)
    smiler: SmilerConfig = field(default_factory=SmilerConfig)
    marginal: MarginalConfig = field(default_factory=MarginalConfig)
