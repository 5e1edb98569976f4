"""Deduper settings (``IMGFLOW_DEDUPE_*``): the model, how to feed it, and the decision.

Model path, input size and normalisation are settings so that another ONNX image encoder
(a CLIP image tower, say) drops in without code changes: it must take float32 NCHW
pixels and return one embedding per image. Give it its own ``IMGFLOW_DEDUPE_MODEL_NAME``,
since embeddings of different models are never compared. The thresholds' defaults were
chosen with ``make eval-dedupe`` (see docs/duplicates/evaluation.md): each is the midpoint
of the values that the two halves of the eval's scenes pick on their own, not the whole
set's optimum, so they are not fitted to its last pair.
"""

from __future__ import annotations

import re

from pydantic import Field, field_validator

from imgflow_contracts.settings import WorkerSettings
from imgflow_deduper.decision import GeometryThresholds, Thresholds

DEFAULT_MODEL_FILE = "efficientnet-lite0-96-embedding.onnx"


class DedupeSettings(WorkerSettings):
    # ONNX Runtime, the model and its buffers for a batch of views bring a pool process to
    # ~180 MB (`make bench`, 12 MP uploads): too near the shared 200 MB default, past which
    # a child is recycled and the model reloaded.
    worker_max_memory_per_child_kb: int = Field(
        default=700_000,
        ge=10_000,
        description="A child past this resident memory is recycled (deduper: model inside).",
    )
    dedupe_model_path: str = Field(
        default=f".data/models/{DEFAULT_MODEL_FILE}",
        description="ONNX image encoder (`make model` builds the default; relative to the cwd).",
    )
    dedupe_model_name: str = Field(
        default="efficientnet-lite0",
        description="Key of the stored embeddings; change it with the model.",
    )
    dedupe_input_size: int = Field(
        default=96, ge=16, le=1024, description="Square input size in pixels the model takes."
    )
    dedupe_mean: list[float] = Field(
        default=[0.498, 0.498, 0.498], description="Per-channel RGB mean, 0-1 scale."
    )
    dedupe_std: list[float] = Field(
        default=[0.502, 0.502, 0.502], description="Per-channel RGB std, 0-1 scale."
    )
    dedupe_detail_size: int = Field(
        default=0,
        ge=0,
        le=1024,
        description="Shrink to this size first if below the input size (a low-pass); 0: off.",
    )
    dedupe_sub_views: bool = Field(
        default=True,
        description="Also embed five 80 % crops, so cropped copies match (5 more inputs).",
    )
    dedupe_mirror_invariant: bool = Field(
        default=True, description="Embed the whole image with its mirror image (1 more input)."
    )
    dedupe_providers: list[str] = Field(
        default=["CUDAExecutionProvider", "CPUExecutionProvider"],
        description="ONNX Runtime providers in order of preference; the first available wins.",
    )
    dedupe_threads: int = Field(
        default=0, ge=0, description="Inference threads; 0 sizes them to the CPU share."
    )
    dedupe_cosine_threshold: float = Field(
        default=0.91, gt=0, le=1, description="Cosine similarity at or above which: duplicate."
    )
    dedupe_phash_max_distance: int = Field(
        default=11, ge=0, le=64, description="pHash Hamming distance at or below which: duplicate."
    )
    dedupe_combined_cosine: float = Field(
        default=0.82,
        gt=0,
        le=1,
        description="Lower cosine that suffices when pHash also agrees (combined rule).",
    )
    dedupe_combined_phash_distance: int = Field(
        default=22,
        ge=0,
        le=64,
        description="Looser pHash distance that suffices when the CNN also agrees.",
    )
    # Duplicate or similar (issue 28): ORB features + RANSAC on the candidates that look
    # alike (overlap.py); thresholds from `make eval-dedupe` (docs/duplicates/similar.md).
    dedupe_geometry: bool = Field(
        default=True,
        description="Tell copies from other pictures of a scene (similar) by a geometric check.",
    )
    dedupe_geometry_min_inliers: int = Field(
        default=10, ge=3, description="Fewer consistent feature matches: no content in common."
    )
    dedupe_duplicate_iou: float = Field(
        default=0.5, ge=0, le=1, description="A copy shares at least this IoU of the frame."
    )
    # 0.75, not 0.7: chosen again on the tuning split with its draws (stacks8,
    # tools/dedupe_eval/copy_agreement.py): burst frames whose moved subject still
    # correlates read 0.70-0.76 and joined the copies' groups.
    dedupe_duplicate_agreement: float = Field(
        default=0.75,
        ge=0,
        le=1,
        description="A copy's shared cells agree at least this often (else: similar).",
    )
    # 75, not 150: chosen with the overlay floor's grid on the tuning split and its hard
    # cases (stacks4; tools/dedupe_eval/overlay_floor.py), where the floor itself lost.
    dedupe_rich_keypoints: int = Field(
        default=75,
        ge=0,
        description="Both images this rich in corners yet matching nowhere: not copies.",
    )
    # Two photos with the same watermark or caption match on it alone; the rest of the
    # shared area disagrees (issue 28, stacks4; chosen on the eval's tuning split).
    dedupe_similar_agreement: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Shared content counts as one scene only where this share of the shared "
        "area agrees (less: an overlay such as a watermark matched; 0: off).",
    )
    # The same watermark, caption or logo on two photos carries a fit with its inliers in a
    # few cells. Off: every floor lost on the tuning split with its hard cases (issue 28,
    # stacks5; tools/dedupe_eval/inlier_spread.py).
    dedupe_similar_spread: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="A fit over most of two corner-rich frames whose matches lie in less than "
        "this share of the shared area's grid cells is one overlay (a watermark on two "
        "photos): the pair is neither. 0: off.",
    )
    # The keypoint spread (Overlap.keypoint_spread) under this floor on a wide fit marks an
    # overlay the same way, judged against where the corners are, so flat copies keep their
    # fit. 0.2: chosen on the tuning split, its hard cases and its draws of 3 images a shot
    # (issue 28, stacks7; tools/dedupe_eval/keypoint_spread.py), any keypoint count.
    dedupe_similar_keypoint_spread: float = Field(
        default=0.2,
        ge=0,
        le=1,
        description="A fit over most of both frames whose matches lie in less than this share "
        "of the shared cells that hold keypoints is one overlay (a watermark on two photos): "
        "the pair is neither. 0: off.",
    )
    # A second view whose cells still agree (a subject on sky or water, a small step to the
    # side) reads as a copy; its cells move apart, a copy's together. 8: chosen on the
    # tuning split once the labelled set held such views (issue 28, stacks10;
    # tools/dedupe_eval/motion_choice.py); measured only where the bar is on.
    dedupe_duplicate_motion: float = Field(
        default=8.0,
        ge=0,
        description="A fit that could be a copy whose textured cells move apart by at least "
        "this many pixels (of the 512-px analysis copy, 90th percentile, beyond one affine "
        "motion of them all) is another view of the scene: similar, not a duplicate. Not "
        "measured where either image is 256 px or smaller (its cells are blur). 0: off (and "
        "not measured).",
    )
    # A second view whose moved subject is too flat at the thumbnail's size for the cells
    # (the moon's surface) still moves its corners together, apart from the fit's. 15:
    # chosen on the tuning split (issue 28, stacks11; tools/dedupe_eval/second_motion_choice.py).
    dedupe_duplicate_second_motion: int = Field(
        default=15,
        ge=0,
        description="A fit that could be a copy where at least this many of the matches it "
        "left out agree on a second motion, 8-64 px from the fit's (a subject moved against "
        "its background), is another view of the scene: similar, not a duplicate. Measured "
        "at any size. 0: off.",
    )
    # Shots sharing a strip of a soft or noisy frame (a burst frame against the half it
    # overlaps) give ORB no fit, yet their thumbnails line up. 0.7 on 6 cells: chosen on the
    # tuning split's draws (issue 28, stacks13; docs/duplicates/similar-log.md).
    dedupe_similar_alignment: float = Field(
        default=0.7,
        ge=0,
        le=1,
        description="A checked pair with no content in common by keypoints that the CNN and "
        "pHash call no duplicate is similar when its two thumbnails, aligned by phase "
        "correlation over part of the frame (IoU 0.05 to under the duplicate IoU), agree on "
        "at least this share of the shared cells. 0: off.",
    )
    dedupe_similar_alignment_cells: int = Field(
        default=6,
        ge=0,
        le=36,
        description="The fewest shared cells (of the 6 x 6 grid) such an alignment needs.",
    )
    # 0.5, not 0.75: shots that share part of a frame can embed apart (a half and a burst
    # frame overlapping it: CNN 0.3-0.75); chosen on the eval's tuning split.
    dedupe_probe_cosine: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="The geometric check runs on candidates at least this alike (or duplicates).",
    )
    dedupe_candidates: int = Field(
        default=20, ge=1, le=1000, description="Nearest neighbours fetched per image."
    )
    # The nearest fill up with copies where a tenant keeps many of each shot: a shot that
    # shares only part of its scene (CNN 0.5-0.7) then never meets it (the eval's
    # retrieval replay, docs/duplicates/similar-log.md). One image per group suffices to stack.
    dedupe_similar_candidates: int = Field(
        default=20,
        ge=0,
        le=1000,
        description="For the similar check: the nearest image of at most this many other "
        "duplicate groups, among the HNSW search's nearest at least the probe cosine alike "
        "(0: off).",
    )
    # make bench (embeddings, 1M vectors in one tenant): near-duplicates found 0.80 at 100,
    # 0.86 at 200, for ~1.5 ms more per search (p50 8.7 -> 10.2 ms).
    dedupe_hnsw_ef_search: int = Field(
        default=200, ge=1, le=1000, description="HNSW search breadth (pgvector hnsw.ef_search)."
    )

    @field_validator("dedupe_mean", "dedupe_std")
    @classmethod
    def _three_channels(cls, values: list[float]) -> list[float]:
        if len(values) != 3 or any(v < 0 for v in values):
            raise ValueError("give three non-negative RGB values")
        return values

    @field_validator("dedupe_model_name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        # It is written into SQL as a literal (so the partial HNSW index can match).
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", name):
            raise ValueError("model names are 1-64 letters, digits, '.', '_' or '-'")
        return name

    @field_validator("dedupe_providers")
    @classmethod
    def _some_provider(cls, providers: list[str]) -> list[str]:
        if not providers:
            raise ValueError("name at least one execution provider")
        return providers

    def thresholds(self) -> Thresholds:
        """The CNN and pHash rules' thresholds."""
        return Thresholds(
            cosine=self.dedupe_cosine_threshold,
            phash_distance=self.dedupe_phash_max_distance,
            combined_cosine=self.dedupe_combined_cosine,
            combined_phash_distance=self.dedupe_combined_phash_distance,
        )

    def geometry(self) -> GeometryThresholds | None:
        """The geometric check's thresholds; None when the check is off."""
        if not self.dedupe_geometry:
            return None
        return GeometryThresholds(
            min_inliers=self.dedupe_geometry_min_inliers,
            duplicate_iou=self.dedupe_duplicate_iou,
            duplicate_agreement=self.dedupe_duplicate_agreement,
            rich_keypoints=self.dedupe_rich_keypoints,
            similar_agreement=self.dedupe_similar_agreement,
            similar_spread=self.dedupe_similar_spread,
            similar_keypoint_spread=self.dedupe_similar_keypoint_spread,
            duplicate_motion=self.dedupe_duplicate_motion,
            duplicate_second_motion=self.dedupe_duplicate_second_motion,
            similar_alignment=self.dedupe_similar_alignment,
            similar_alignment_cells=self.dedupe_similar_alignment_cells,
        )
