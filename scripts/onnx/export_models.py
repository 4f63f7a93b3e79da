"""Exports the ONNX models the trainer's ONNX tests read, with PyTorch 2.9.0 (scripts/export-onnx).

1. EfficientNet-Lite0 with the ImageNet weights of the `efficientnet-lite0` asset, written here as
   a PyTorch module whose parameter names are the weights' (lukemelas' layout), TensorFlow "SAME"
   padding and ReLU6, so that `trainer exemplars --model efficientnet-lite0.onnx` can be checked
   against the native burn path on the same photos.
2. A small vision transformer with seeded random weights (patch 16, width 64, 2 blocks, a class
   token), and the activations PyTorch records for a seeded input batch at four modules: the
   patch embedding (maps), each block (tokens), the class token after the final norm (features).

Usage: python export_models.py WEIGHTS.pth OUTDIR
Writes OUTDIR/efficientnet-lite0.onnx, OUTDIR/vit-tiny.onnx, OUTDIR/vit-tiny.input.npy,
OUTDIR/vit-tiny.<module>.npy, OUTDIR/tiny-cnn.onnx (10 units, for quick end-to-end runs),
OUTDIR/gen-tiny.onnx (a class-conditional generator) with its latents and PyTorch's maps and
images (gen-tiny.{z,y,act1,act2,images}.npy),
OUTDIR/unsupported-op.onnx (an operator tract lacks) and
OUTDIR/manifest.json.
"""

import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# (repeats, kernel, stride, expansion, in, out) per stage: EfficientNet-Lite0.
STAGES = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
]
BN_EPS = 1e-3


class SameConv(nn.Conv2d):
    """A convolution padded as TensorFlow's "SAME" (asymmetric when the stride is 2)."""

    def forward(self, x):
        pads = []
        for size, k, s in zip(x.shape[-1:-3:-1], self.kernel_size[::-1], self.stride[::-1]):
            out = math.ceil(size / s)
            total = max((out - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads))


class MBBlock(nn.Module):
    def __init__(self, k, stride, expand, cin, cout):
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = SameConv(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self.expand = expand != 1
        self._depthwise_conv = SameConv(mid, mid, k, stride=stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = SameConv(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.skip = stride == 1 and cin == cout

    def forward(self, x):
        h = x
        if self.expand:
            h = F.relu6(self._bn0(self._expand_conv(h)))
        h = F.relu6(self._bn1(self._depthwise_conv(h)))
        h = self._bn2(self._project_conv(h))
        return h + x if self.skip else h


class EfficientNetLite0(nn.Module):
    def __init__(self):
        super().__init__()
        self._conv_stem = SameConv(3, 32, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        blocks = []
        for repeats, k, s, e, cin, cout in STAGES:
            for j in range(repeats):
                blocks.append(MBBlock(k, s if j == 0 else 1, e, cin if j == 0 else cout, cout))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SameConv(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS)
        self._fc = nn.Linear(1280, 1000)

    def forward(self, x):
        h = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            h = block(h)
        h = F.relu6(self._bn1(self._conv_head(h)))
        return self._fc(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1))


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        n, t, c = x.shape
        q, k, v = self.qkv(x).reshape(n, t, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        a = (q @ k.transpose(-2, -1)) * (c // self.heads) ** -0.5
        h = (a.softmax(-1) @ v).transpose(1, 2).reshape(n, t, c)
        return self.proj(h)


class Block(nn.Module):
    def __init__(self, dim, heads, hidden):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class PreLogits(nn.Module):
    """The class token after the final norm: a feature vector per image."""

    def forward(self, x):
        return x[:, 0]


class TinyViT(nn.Module):
    def __init__(self, size=224, patch=16, dim=64, depth=2, heads=4, classes=10):
        super().__init__()
        grid = size // patch
        self.patch_embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls_token = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.pos_embed = nn.Parameter(torch.randn(1, grid * grid + 1, dim) * 0.02)
        self.blocks = nn.ModuleList([Block(dim, heads, dim * 2) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.pre_logits = PreLogits()
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        h = self.patch_embed(x)
        h = h.flatten(2).transpose(1, 2)
        h = torch.cat([self.cls_token.expand(h.shape[0], -1, -1), h], dim=1) + self.pos_embed
        for block in self.blocks:
            h = block(h)
        return self.head(self.pre_logits(self.norm(h)))


class TinyCNN(nn.Module):
    """A few units per layer, so that describing all of them end to end stays quick in tests."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 7, stride=4, padding=3)
        self.conv2 = nn.Conv2d(6, 4, 3, stride=2, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        h = F.relu(self.conv2(F.relu(self.conv1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1))


class TinyCNNChannelsLast(nn.Module):
    """TinyCNN's own weights with its first layer's output carried channels last, (N, H, W, C), as
    Swin's and ConvNeXt's blocks and TensorFlow exports carry theirs: `act` is settled by the
    graph (after a transpose), `regrid` (a reshape and back) only by its square map."""

    def __init__(self, cnn):
        super().__init__()
        self.cnn = cnn
        self.act = nn.ReLU()
        self.regrid = Regrid()

    def forward(self, x):
        h = self.regrid(self.act(self.cnn.conv1(x).permute(0, 2, 3, 1)))
        h = F.relu(self.cnn.conv2(h.permute(0, 3, 1, 2)))
        return self.cnn.fc(torch.flatten(F.adaptive_avg_pool2d(h, 1), 1))


class Regrid(nn.Module):
    def forward(self, h):
        n, height, width, c = h.shape
        return h.reshape(n, height * width, c).reshape(n, height, width, c)


class TinyGenerator(nn.Module):
    """A class-conditional generator as BigGAN is built (z and a class embedding, transposed
    convolutions, batch norms, tanh), small enough to run 200 latents in a test."""

    def __init__(self, dim=16, classes=10):
        super().__init__()
        self.embed = nn.Embedding(classes, dim)
        self.fc = nn.Linear(2 * dim, 32 * 4 * 4)
        self.up1 = nn.ConvTranspose2d(32, 16, 4, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.act1 = nn.ReLU()
        self.up2 = nn.ConvTranspose2d(16, 8, 4, stride=2, padding=1)
        self.bn2 = nn.BatchNorm2d(8)
        self.act2 = nn.ReLU()
        self.out = nn.ConvTranspose2d(8, 3, 4, stride=2, padding=1)

    def forward(self, z, y):
        h = self.fc(torch.cat([z, self.embed(y)], 1)).view(-1, 32, 4, 4)
        h = self.act1(self.bn1(self.up1(F.relu(h))))
        h = self.act2(self.bn2(self.up2(h)))
        return torch.tanh(self.out(h))


def export_generator(out):
    """TinyGenerator with seeded weights and batch-norm statistics, its 200 latents (z, class
    ids), and what PyTorch computes for them: both ReLU maps and the images."""
    torch.manual_seed(3)
    gen = TinyGenerator()
    for bn in (gen.bn1, gen.bn2):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    gen.eval()
    g = torch.Generator().manual_seed(4)
    z = torch.randn(200, 16, generator=g)
    y = torch.randint(10, (200,), generator=g)
    recorded = {}
    for name in ("act1", "act2"):
        gen.get_submodule(name).register_forward_hook(
            lambda _m, _i, o, name=name: recorded.__setitem__(name, o.detach().numpy())
        )
    with torch.no_grad():
        images = gen(z, y).numpy()
    np.save(os.path.join(out, "gen-tiny.z.npy"), z.numpy().astype(np.float32))
    np.save(os.path.join(out, "gen-tiny.y.npy"), y.numpy().astype(np.int64))
    np.save(os.path.join(out, "gen-tiny.images.npy"), images.astype(np.float32))
    for name in ("act1", "act2"):
        np.save(os.path.join(out, f"gen-tiny.{name}.npy"), recorded[name].astype(np.float32))
    torch.onnx.export(
        gen,
        (z[:2], y[:2]),
        os.path.join(out, "gen-tiny.onnx"),
        dynamo=False,
        opset_version=17,
        input_names=["z", "y"],
        output_names=["image"],
        dynamic_axes={"z": {0: "batch"}, "y": {0: "batch"}, "image": {0: "batch"}},
    )


def export(model, path, size):
    model.eval()
    x = torch.zeros(2, 3, size, size)
    torch.onnx.export(
        model,
        (x,),
        path,
        dynamo=False,
        opset_version=17,
        input_names=["input"],
        output_names=["output"],
        dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
    )


def main():
    weights, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)

    net = EfficientNetLite0()
    state = torch.load(weights, map_location="cpu", weights_only=True)
    missing, unexpected = net.load_state_dict(state, strict=False)
    # The weights also hold batch norms' step counters in some releases; nothing else may differ.
    assert not missing, missing
    assert all(k.endswith("num_batches_tracked") for k in unexpected), unexpected
    export(net, os.path.join(out, "efficientnet-lite0.onnx"), 224)

    vit = TinyViT().eval()
    recorded = {}
    modules = ["patch_embed", "blocks.0", "blocks.1", "pre_logits"]
    for name in modules:
        vit.get_submodule(name).register_forward_hook(
            lambda _m, _i, o, name=name: recorded.__setitem__(name, o.detach().numpy())
        )
    x = torch.randn(3, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        vit(x)
    np.save(os.path.join(out, "vit-tiny.input.npy"), x.numpy().astype(np.float32))
    for name in modules:
        np.save(os.path.join(out, f"vit-tiny.{name}.npy"), recorded[name].astype(np.float32))
    export(vit, os.path.join(out, "vit-tiny.onnx"), 224)

    cnn = TinyCNN().eval()
    export(cnn, os.path.join(out, "tiny-cnn.onnx"), 224)
    export(TinyCNNChannelsLast(cnn).eval(), os.path.join(out, "tiny-cnn-nhwc.onnx"), 224)
    export_generator(out)

    # A model with an operator tract lacks (Det), for the error that names it and its node.
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Det", ["input"], ["output"], name="the_determinant")],
        "unsupported",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, 8, 8])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, os.path.join(out, "unsupported-op.onnx"))

    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(
            {
                "torch": torch.__version__,
                "efficientnet-lite0": {"weights": os.path.basename(weights)},
                "vit-tiny": {"modules": modules, "input": "vit-tiny.input.npy", "prefix": 1},
                "gen-tiny": {"inputs": ["z", "y"], "modules": ["act1", "act2"], "latents": 200},
            },
            f,
            indent=1,
        )


if __name__ == "__main__":
    main()
