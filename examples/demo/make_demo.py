#!/usr/bin/env python3
"""Build the bundled model for `resin demo`: a small CIFAR-style ResNet trained on the UCI handwritten digits.

Run from the repository root:

    python3 examples/demo/make_demo.py

Needs Python with torch, onnx, onnxruntime, numpy, scikit-learn and Pillow. Nothing is downloaded: the digits
(1797 8x8 images, 16 gray levels) ship inside scikit-learn (`sklearn.datasets.load_digits`).

Writes, next to this script:
  digits_resnet.onnx              the model (opset 17, input `input` [batch,1,8,8] in [0,1], output `output`
                                  [batch,10] logits)
  test_input.npy, test_labels.npy the whole test split (float32 [297,1,8,8], int64 [297])
  images/digit_<label>_<i>.png    one 8x8 grayscale PNG per class; <i> is the image's index in the test split
  images/labels.txt               class names "0".."9", one per line
  expected.json                   accuracies, the predicted label of every PNG, epochs, training time

Deterministic: fixed split (the last 297 images are the test set), seeded initialisation and shuffling,
CPU, one thread, deterministic algorithms. Only `train_seconds` changes from run to run.
"""

import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGES = os.path.join(HERE, "images")
ONNX_PATH = os.path.join(HERE, "digits_resnet.onnx")

SEED = 0
N_TEST = 297
EPOCHS = 30
BATCH = 64
LR = 0.1
THREADS = 1  # see the note in main()
MIN_ACCURACY = 0.97


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.shortcut is None else self.shortcut(x)
        return F.relu(out + identity)


class DigitsResNet(nn.Module):
    """CIFAR-style ResNet for 1x8x8 inputs: stem, 3 stages of one BasicBlock (16/32/64), GAP, linear."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = BasicBlock(16, 16, 1)  # 8x8
        self.layer2 = BasicBlock(16, 32, 2)  # 4x4
        self.layer3 = BasicBlock(32, 64, 2)  # 2x2
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, num_classes)

    def forward(self, x):
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        x = torch.flatten(self.pool(x), 1)
        return self.fc(x)


def load_data():
    from sklearn.datasets import load_digits

    digits = load_digits()
    raw = digits.data.astype(np.float32)  # 1797 x 64, integers 0..16
    y = digits.target.astype(np.int64)
    assert raw.shape == (1797, 64) and raw.min() == 0 and raw.max() == 16
    x = (raw / 16.0).reshape(-1, 1, 8, 8).astype(np.float32)
    n_train = len(x) - N_TEST
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:], raw[n_train:].reshape(-1, 8, 8))


def accuracy(logits, labels):
    return float((np.asarray(logits).argmax(1) == labels).mean())


def shift(x, gen):
    """Augmentation: move every image by a random -1..1 pixels in x and y (zero fill), keeping 8x8."""
    padded = F.pad(x, (1, 1, 1, 1))
    dy = torch.randint(0, 3, (len(x),), generator=gen)
    dx = torch.randint(0, 3, (len(x),), generator=gen)
    out = torch.empty_like(x)
    for a in range(3):
        for b in range(3):
            sel = (dy == a) & (dx == b)
            out[sel] = padded[sel, :, a : a + 8, b : b + 8]
    return out


def train(x_train, y_train, x_test, y_test):
    torch.manual_seed(SEED)
    model = DigitsResNet()
    xt, yt = torch.from_numpy(x_train), torch.from_numpy(y_train)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9, weight_decay=5e-4, nesterov=True)
    steps_per_epoch = (len(xt) + BATCH - 1) // BATCH
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, epochs=EPOCHS, steps_per_epoch=steps_per_epoch)
    gen = torch.Generator().manual_seed(SEED)
    t0 = time.perf_counter()
    for epoch in range(1, EPOCHS + 1):
        model.train()
        perm = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for i in range(0, len(xt), BATCH):
            idx = perm[i : i + BATCH]
            loss = F.cross_entropy(model(shift(xt[idx], gen)), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        model.eval()
        with torch.no_grad():
            acc = accuracy(model(torch.from_numpy(x_test)).numpy(), y_test)
        print(f"epoch {epoch:2d}  loss {total / len(xt):.4f}  test accuracy {acc:.4f}")
    seconds = time.perf_counter() - t0
    model.eval()
    return model, EPOCHS, seconds


def export(model):
    import onnx

    dummy = torch.zeros(1, 1, 8, 8)
    torch.onnx.export(
        model,
        (dummy,),
        ONNX_PATH,
        dynamo=False,
        export_params=True,
        opset_version=17,
        do_constant_folding=False,
        input_names=["input"],
        output_names=["output"],
        dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
    )
    m = onnx.load(ONNX_PATH)
    onnx.checker.check_model(m, full_check=True)
    return m


def save_png(path, raw8x8):
    from PIL import Image

    pixels = np.round(raw8x8 / 16.0 * 255.0).astype(np.uint8)
    Image.fromarray(pixels).save(path, optimize=False)


def load_png(path):
    from PIL import Image

    img = Image.open(path)
    assert img.mode == "L" and img.size == (8, 8), (img.mode, img.size)
    return (np.asarray(img, dtype=np.float32) / 255.0).reshape(1, 1, 8, 8)


def main():
    # One intra-op thread: the result then does not depend on how work is split between threads, and on a
    # busy two-core machine two threads made training ~10x slower (OpenMP threads waiting on each other).
    torch.set_num_threads(THREADS)
    torch.use_deterministic_algorithms(True)
    np.random.seed(SEED)

    (x_train, y_train), (x_test, y_test, raw_test) = load_data()
    print(f"train {len(x_train)}  test {len(x_test)}")

    model, epochs, seconds = train(x_train, y_train, x_test, y_test)
    with torch.no_grad():
        torch_logits = model(torch.from_numpy(x_test)).numpy()
    test_acc = accuracy(torch_logits, y_test)
    params = sum(p.numel() for p in model.parameters())
    print(f"trained {epochs} epochs in {seconds:.1f} s; {params} parameters; torch test accuracy {test_acc:.4f}")
    if test_acc < MIN_ACCURACY:
        sys.exit(f"error: test accuracy {test_acc:.4f} < {MIN_ACCURACY}")

    import onnx
    import onnxruntime as ort

    m = export(model)
    ops = sorted({n.op_type for n in m.graph.node})
    print(f"exported {os.path.relpath(ONNX_PATH)} ({os.path.getsize(ONNX_PATH)} bytes); ops {ops}")
    so = ort.SessionOptions()
    so.intra_op_num_threads = THREADS
    sess = ort.InferenceSession(ONNX_PATH, so, providers=["CPUExecutionProvider"])
    ort_logits = sess.run(["output"], {"input": x_test})[0]
    max_diff = float(np.abs(ort_logits - torch_logits).max())
    same_argmax = bool((ort_logits.argmax(1) == torch_logits.argmax(1)).all())
    ort_acc = accuracy(ort_logits, y_test)
    print(f"ORT vs torch: max abs diff {max_diff:.3g}, same argmax {same_argmax}; ORT accuracy {ort_acc:.4f}")
    if max_diff > 1e-4 or not same_argmax:
        sys.exit("error: ONNX Runtime disagrees with PyTorch")

    np.save(os.path.join(HERE, "test_input.npy"), x_test.astype(np.float32))
    np.save(os.path.join(HERE, "test_labels.npy"), y_test.astype(np.int64))

    # One PNG per class: the first image of that class in the test split that ORT classifies correctly
    # after the 8-bit round trip (png / 255).
    os.makedirs(IMAGES, exist_ok=True)
    for name in os.listdir(IMAGES):
        if name.endswith(".png"):
            os.remove(os.path.join(IMAGES, name))
    images = {}
    for label in range(10):
        for rank, i in enumerate(np.flatnonzero(y_test == label)):
            fname = f"digit_{label}_{i}.png"
            path = os.path.join(IMAGES, fname)
            save_png(path, raw_test[i])
            pred = int(sess.run(["output"], {"input": load_png(path)})[0].argmax(1)[0])
            if pred == label:
                if rank:
                    print(f"class {label}: first {rank} test image(s) misclassified after PNG round trip")
                images[fname] = pred
                break
            os.remove(path)
        else:
            sys.exit(f"error: no test image of class {label} is classified correctly")
    with open(os.path.join(IMAGES, "labels.txt"), "w") as f:
        f.write("".join(f"{c}\n" for c in range(10)))
    print(f"images: {images}")

    expected = {
        "test_accuracy": round(test_acc, 6),
        "ort_accuracy": round(ort_acc, 6),
        "test_correct": int((torch_logits.argmax(1) == y_test).sum()),
        "test_count": int(len(y_test)),
        "ort_max_abs_diff": max_diff,
        "images": images,
        "epochs": epochs,
        "train_seconds": round(seconds, 1),
        "parameters": int(params),
        "torch_version": torch.__version__,
    }
    with open(os.path.join(HERE, "expected.json"), "w") as f:
        json.dump(expected, f, indent=2)
        f.write("\n")
    print("wrote", os.path.relpath(os.path.join(HERE, "expected.json")))


if __name__ == "__main__":
    main()
