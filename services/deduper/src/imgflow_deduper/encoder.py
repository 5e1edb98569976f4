"""The ONNX Runtime session that turns pixels into embeddings.

Execution providers are a preference-ordered list (settings) intersected with what this
onnxruntime build offers, so one image runs on CUDA nodes (with onnxruntime-gpu) and CPU
nodes alike; the choice, the thread count and the model are logged once at start. CPU
threads default to this process's CPU share (affinity and cgroup quota), since ONNX
Runtime's own default counts the host's cores and oversubscribes a limited container.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from imgflow_deduper.model_input import ModelInput

log = logging.getLogger(__name__)

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"

# Options per provider, in one place. CUDA: grow the arena only as needed (the deduper
# shares a GPU), and let cuDNN pick the fastest convolution once per input shape.
PROVIDER_OPTIONS: dict[str, dict[str, Any]] = {
    CUDA: {"arena_extend_strategy": "kSameAsRequested", "cudnn_conv_algo_search": "EXHAUSTIVE"},
    CPU: {},
}


class ModelMissingError(RuntimeError):
    """The configured model file does not exist."""


def cpu_share() -> int:
    """CPUs this process may use: its affinity, capped by a cgroup v2 CPU quota."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def choose_providers(preferred: Sequence[str], available: Sequence[str]) -> list[str]:
    """The preferred providers this runtime has, in preference order; CPU as the floor."""
    chosen = [p for p in preferred if p in available]
    if CPU not in chosen:
        chosen.append(CPU)
    return chosen


@dataclass(frozen=True)
class EncoderInfo:
    providers: list[str]
    threads: int
    input_name: str
    dim: int
    metadata: dict[str, str]


class Encoder:
    """A loaded model: ``embed(batch)`` maps (N, 3, S, S) pixels to (N, D) unit vectors."""

    def __init__(self, model_path: str, preferred: Sequence[str], threads: int = 0) -> None:
        path = Path(model_path)
        if not path.is_file():
            raise ModelMissingError(
                f"no model at {path.resolve()}: run `make model` or set IMGFLOW_DEDUPE_MODEL_PATH"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or cpu_share()
        options.inter_op_num_threads = 1  # the graph is one chain: nothing to run side by side
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle pool threads sleep instead of spinning: a spinning thread burns CPU that the
        # other workers on the node need. Measured: 2 spinning threads cost 10-90 % more
        # inference CPU than 2 sleeping ones, the most when runs are apart, as jobs are.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        providers = choose_providers(preferred, ort.get_available_providers())
        self.session = ort.InferenceSession(
            str(path),
            sess_options=options,
            providers=[(p, PROVIDER_OPTIONS.get(p, {})) for p in providers],
        )
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if len(inputs) != 1 or len(outputs) < 1:
            raise ValueError(f"{path}: expected one input and an embedding output")
        dim = outputs[0].shape[-1]
        if not isinstance(dim, int):
            raise ValueError(f"{path}: the embedding size must be fixed, got {dim!r}")
        self.input = ModelInput.of(inputs[0].type, inputs[0].shape)
        self.info = EncoderInfo(
            providers=self.session.get_providers(),  # what the session really got
            threads=options.intra_op_num_threads,
            input_name=inputs[0].name,
            dim=dim,
            metadata=dict(self.session.get_modelmeta().custom_metadata_map),
        )
        log.info(
            "embedding model %s: %d-dim, providers %s (preferred %s, available %s), "
            "%d intra-op threads",
            path,
            dim,
            self.info.providers,
            list(preferred),
            ort.get_available_providers(),
            self.info.threads,
        )

    def embed(self, pixels: np.ndarray, *, mirror_invariant: bool = False) -> np.ndarray:
        """Unit-length float32 embeddings, one row per input image.

        ``mirror_invariant`` embeds each image and its mirror image in one batch and sums
        the two, so a flipped upload gets the same vector; it doubles the compute.
        """
        if pixels.ndim == 3:
            pixels = pixels[None]
        n = len(pixels)
        if mirror_invariant:
            pixels = np.concatenate([pixels, pixels[:, :, :, ::-1]])
        out = self.run(pixels)
        if mirror_invariant:
            out = out[:n] + out[n:]
        return unit_rows(out)

    def run(self, pixels: np.ndarray) -> np.ndarray:
        """The model's raw (N, D) output for a (N, 3, S, S) batch, in one session run."""
        (out, *_) = self.session.run(None, {self.info.input_name: self.input.feed(pixels)})
        return np.asarray(out, dtype=np.float32).reshape(len(pixels), -1)


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    # Normalise here, not only in the graph: a dropped-in model may not end in one.
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def embed_views(
    encoder: Encoder, pixels: np.ndarray, *, mirror_invariant: bool
) -> tuple[np.ndarray, np.ndarray]:
    """The whole image's embedding (input row 0) and its sub-views' (rows 1 on).

    Only the whole image is embedded with its mirror: the sub-view set is closed under
    mirroring (the corners swap), so a flipped crop still meets its view, and the views
    cost one input each instead of two. Everything goes through the model as one batch.
    """
    if not mirror_invariant:
        out = encoder.run(pixels)
        return unit_rows(out[:1])[0], unit_rows(out[1:])
    out = encoder.run(np.concatenate([pixels[:1], pixels[:1, :, :, ::-1], pixels[1:]]))
    return unit_rows(out[:1] + out[1:2])[0], unit_rows(out[2:])
