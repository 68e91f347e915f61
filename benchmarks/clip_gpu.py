"""CLIP on CUDA against the CPU: the same JPEG images and captions embedded through `ClipEmbedder` (the code
the CLIP filters run) on the CPU in float32, then on CUDA in float32 and with float16 autocast (the
accelerator resource's default), compared item by item, with images per second on each.

The model is loaded the way the filtered stage loads it, `ModelRuntime.local(clip_arch=, clip_weights=)`.
By default it is a small randomly initialised ViT CLIP whose config the script writes (nothing is
downloaded); `--arch ViT-B-32` builds that open_clip architecture at random instead; `--weights FILE`
loads real weights for `--arch` (a name or a model-config .json). Random weights are saved to a temporary
.safetensors file first, so loading is always the real path.

Checked, for each CUDA run against the CPU run: the largest |difference| of the CLIP score (cosine of
image and caption vectors) and the largest 1 - cosine between an image's CPU and CUDA vectors. The script
exits 1 when a CLIP-score difference exceeds its tolerance, and 2 when there is no CUDA device.

Images per second count decoding, preprocessing (on the embedder's decode threads) and the forward pass;
the decode + preprocess rate of one thread is printed too, since decoding can bound what the GPU is fed.

    python benchmarks/clip_gpu.py                             # 1,024 images (256 on the CPU), ~1 minute
    python benchmarks/clip_gpu.py --arch ViT-B-32 --images 4096 --batch-size 256
    python benchmarks/clip_gpu.py --arch ViT-L-14 --weights /models/open_clip_pytorch_model.bin
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curation_dagster.models.clip import ClipEmbedder, input_size
from curation_dagster.models.loading import clip_architecture
from curation_dagster.models.runtime import ModelRuntime

SMALL_CLIP = {
    "embed_dim": 256,
    "vision_cfg": {"image_size": 224, "layers": 6, "width": 384, "head_width": 64, "patch_size": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 256, "heads": 4, "layers": 4},
}
"""The default model: ViT-B-32's input (224 px, 32 px patches) and half its image tower's width and depth,
with a smaller text tower."""

WORDS = [
    "a",
    "photo",
    "of",
    "the",
    "red",
    "green",
    "small",
    "large",
    "dog",
    "cat",
    "house",
    "tree",
    "car",
    "street",
    "river",
    "mountain",
    "city",
    "people",
    "two",
    "old",
    "new",
    "on",
    "in",
    "near",
    "with",
    "under",
    "beside",
    "morning",
    "night",
    "painting",
    "drawing",
    "close",
    "up",
    "view",
]


def images_and_captions(count: int, seed: int = 0) -> tuple[list[bytes], list[str]]:
    """`count` JPEG images of 256-640 px sides (smooth colour fields with noise) and a caption for each."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    images, captions = [], []
    for _ in range(count):
        width, height = (int(side) for side in rng.integers(256, 641, size=2))
        low = rng.random((4, 4, 3))
        field = np.asarray(
            Image.fromarray((low * 255).astype(np.uint8)).resize((width, height), Image.Resampling.BICUBIC),
            dtype=np.float64,
        )
        pixels = np.clip(field + rng.normal(0, 12, field.shape), 0, 255).astype(np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
        images.append(buffer.getvalue())
        captions.append(" ".join(rng.choice(WORDS, size=int(rng.integers(3, 12)))))
    return images, captions


def random_weights(arch: str, folder: Path, seed: int) -> str:
    """A randomly initialised model of `arch` saved as .safetensors, for loading through the runtime."""
    import open_clip
    import torch
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    model = open_clip.create_model(clip_architecture(arch), pretrained=None, device="cpu")
    path = folder / "random.safetensors"
    save_file({name: tensor.contiguous() for name, tensor in model.state_dict().items()}, str(path))
    return str(path)


def run(
    runtime: ModelRuntime, images: list[bytes], captions: list[str]
) -> tuple[np.ndarray, np.ndarray, float]:
    """Image and caption vectors and images per second (model load and one warm-up batch not timed)."""
    embedder = ClipEmbedder(runtime)
    embedder.embed_images(images[: runtime.batch_size])
    started = time.perf_counter()
    result = embedder.embed_images(images)
    elapsed = time.perf_counter() - started
    failed = [error for error in result.errors if error is not None]
    if failed:
        raise SystemExit(f"{len(failed)} images failed to embed, e.g. {failed[0]}")
    return result.vectors, embedder.embed_texts(captions), len(images) / elapsed


def decode_rate(runtime: ModelRuntime, images: list[bytes]) -> float:
    """Images per second for decoding and preprocessing alone, on one thread, as the embedder does it."""
    embedder = ClipEmbedder(runtime)
    _, preprocess, _ = runtime.clip()
    size = input_size(runtime.clip()[0])
    started = time.perf_counter()
    for data in images:
        embedder.prepare(data, preprocess, size)
    return len(images) / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--arch", default="", help="open_clip name or model-config .json (default: the small CLIP)"
    )
    parser.add_argument(
        "--weights", default="", help=".pt or .safetensors weights for --arch (default: random)"
    )
    parser.add_argument("--images", type=int, default=1024, help="images embedded on CUDA")
    parser.add_argument("--cpu-images", type=int, default=256, help="of those, embedded on the CPU too")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cuda:0")
    parser.add_argument("--tolerance-fp32", type=float, default=2e-3, help="max |CLIP score difference|")
    parser.add_argument("--tolerance-fp16", type=float, default=2e-2, help="max |CLIP score difference|")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print(
            "No CUDA device here (torch.cuda.is_available() is False): this benchmark compares the CUDA path "
            "with the CPU path. Run it on a machine with an NVIDIA GPU and a CUDA build of torch.",
            file=sys.stderr,
        )
        return 2
    if args.weights and not args.arch:
        parser.error("--weights needs --arch (the architecture of those weights)")

    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        arch = args.arch
        if not arch:
            arch = str(folder / "bench-small-clip.json")
            Path(arch).write_text(json.dumps(SMALL_CLIP), encoding="utf-8")
        weights = args.weights or random_weights(arch, folder, args.seed)
        images, captions = images_and_captions(args.images, args.seed)
        cpu_count = min(args.cpu_images, args.images)
        print(
            f"model {arch if args.arch else 'small random CLIP (built here)'}, "
            f"weights {args.weights or 'random'}; {args.images} images ({cpu_count} on the CPU), "
            f"batch {args.batch_size}, {torch.get_num_threads()} CPU threads, {torch.cuda.get_device_name(args.device)}"
        )

        def runtime(device: str, dtype: str) -> ModelRuntime:
            return ModelRuntime.local(
                device, clip_arch=arch, clip_weights=weights, batch_size=args.batch_size, dtype=dtype
            )

        cpu = runtime("cpu", "float32")
        print(f"decode + preprocess alone: {decode_rate(cpu, images[:cpu_count]):,.0f} images/s (one thread)")
        cpu_images, cpu_texts, cpu_rate = run(cpu, images[:cpu_count], captions[:cpu_count])
        cpu_scores = np.einsum("nd,nd->n", cpu_images.astype(np.float64), cpu_texts.astype(np.float64))
        print(f"{'cpu float32':<20} {cpu_rate:>10,.0f} images/s")
        failed = False
        for dtype, tolerance in (("float32", args.tolerance_fp32), ("float16", args.tolerance_fp16)):
            vectors, texts, rate = run(runtime(args.device, dtype), images, captions)
            scores = np.einsum(
                "nd,nd->n", vectors[:cpu_count].astype(np.float64), texts[:cpu_count].astype(np.float64)
            )
            score_gap = float(np.max(np.abs(scores - cpu_scores)))
            vector_gap = float(np.max(1 - np.einsum("nd,nd->n", vectors[:cpu_count], cpu_images)))
            verdict = "ok" if score_gap <= tolerance else f"ABOVE TOLERANCE {tolerance}"
            failed = failed or score_gap > tolerance
            print(
                f"{args.device + ' ' + dtype:<20} {rate:>10,.0f} images/s ({rate / cpu_rate:.1f}x the CPU); "
                f"max |clip_score - cpu| {score_gap:.2e} ({verdict}), max 1 - cos(image, cpu image) {vector_gap:.2e}"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
