#!/usr/bin/python3
"""Exports ResNet-18 and MobileNetV2 to ONNX with Debian's PyTorch.

  bench/export_models.py [OUT_DIR]      (default: bench/models)

Needs python3-torch and python3-torchvision (apt-get install python3-torch
python3-torchvision); downloads nothing: the weights are torchvision's random
initialization (weights=None), which does not change any operator's shape.
Batch 1, 3x224x224 inputs, opset 13, static shapes.
"""
import os
import sys

import torch
import torchvision

out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "models")
os.makedirs(out, exist_ok=True)
torch.manual_seed(0)
for name, make in [("resnet18", torchvision.models.resnet18), ("mobilenet_v2", torchvision.models.mobilenet_v2)]:
    model = make(weights=None).eval()
    path = os.path.join(out, name + ".onnx")
    torch.onnx.export(model, torch.randn(1, 3, 224, 224), path, opset_version=13,
                      input_names=["input"], output_names=["logits"])
    print("wrote", path)
