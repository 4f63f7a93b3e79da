"""MILAN's masked pyramid features in PyTorch, for `trainer bench --encoders --vs-pytorch`: the
same encoders, stages, batch and masked pooling as trainer/src/probing/features.rs, timed the
same way.

Written for this project (not the reference's code). ResNet-50/101 are torchvision's (random
weights: the speed does not depend on them), in eval mode as the reference runs its encoder;
their pyramid is conv1 (after its batch norm and ReLU) and layer1-layer4. EfficientNet-Lite0 is
efficientnet_lite_pytorch's, its pyramid _blocks.0, .2, .4, .10 and the head. Each stage's map is
pooled with the exemplar's mask resized bilinearly (align_corners=False), plus a 1e-12 floor,
normalised to sum 1; the stage vectors are concatenated.

Prints one JSON object: images/s per encoder, the torch version and its threads.
"""

import argparse
import json
import time

import torch
import torch.nn.functional as F


def masked_pool(feature, masks):
    n, c, h, w = feature.shape
    weights = F.interpolate(masks, size=(h, w), mode="bilinear", align_corners=False) + 1e-12
    weights = weights / weights.sum(dim=(2, 3), keepdim=True)
    return (feature * weights).sum(dim=(2, 3))


def resnet_pyramid(model):
    def features(images, masks):
        x = model.relu(model.bn1(model.conv1(images)))
        parts = [masked_pool(x, masks)]
        x = model.maxpool(x)
        for stage in (model.layer1, model.layer2, model.layer3, model.layer4):
            x = stage(x)
            parts.append(masked_pool(x, masks))
        return torch.cat(parts, 1)

    return features


def efficientnet_pyramid(model):
    stages = (0, 2, 4, 10)

    def features(images, masks):
        x = model._swish(model._bn0(model._conv_stem(images)))
        parts = []
        for i, block in enumerate(model._blocks):
            x = block(x)
            if i in stages:
                parts.append(masked_pool(x, masks))
        x = model._swish(model._bn1(model._conv_head(x)))
        parts.append(masked_pool(x, masks))
        return torch.cat(parts, 1)

    return features


def encoder(name):
    if name.startswith("resnet"):
        import torchvision

        model = getattr(torchvision.models, name)(weights=None)
        return model.eval(), resnet_pyramid(model)
    if name == "efficientnet-lite0":
        from efficientnet_lite_pytorch import EfficientNet

        model = EfficientNet.from_name("efficientnet-lite0")
        return model.eval(), efficientnet_pyramid(model)
    raise SystemExit(f"unknown encoder {name}")


def synthetic(batch, size=224):
    """The bench's inputs, as bench_encoders.rs builds them: values in [-1, 1) and masks of a
    square in the middle (content does not change the speed)."""
    i = torch.arange(batch * 3 * size * size, dtype=torch.int64)
    images = ((i * 2654435761) % 1000).float().div(500.0).sub(1.0).reshape(batch, 3, size, size)
    masks = torch.zeros(batch, 1, size, size)
    masks[:, :, size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 1.0
    return images, masks


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--encoders", required=True)
    parser.add_argument("--images", type=int, required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    images, masks = synthetic(args.batch)
    rates = {}
    with torch.inference_mode():
        for name in args.encoders.split(","):
            _, features = encoder(name)
            features(images, masks)  # untimed warm-up
            rounds = -(-args.images // args.batch)
            started = time.perf_counter()
            for _ in range(rounds):
                features(images, masks)
            rates[name] = rounds * args.batch / (time.perf_counter() - started)
    print(json.dumps({"torch": torch.__version__, "threads": torch.get_num_threads(), "rates": rates}))


main()
