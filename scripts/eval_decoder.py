"""Reconstruction quality of trained decoders, for their model cards.

Encodes each photo with the embedded VGG16 up to the decoder's level (or, for the
distilled AdaIN model ``adain_lite.safetensors``, with its own encoder), decodes it, and
reports PSNR (dB, higher is better) and luminance SSIM (1 is perfect) against the photo.

    python scripts/eval_decoder.py models/decoder_relu4_1.safetensors [--size 512]
        [--photos ../shared/data/content]
    python scripts/eval_decoder.py models/adain_lite.safetensors

Prints a markdown table (one row per photo and the mean).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from restyle import imaging
from restyle.backbone import get_vgg
from restyle.evaluate.metrics import ssim_luminance
from restyle.nets.decoder import load_decoder
from restyle.nets.lite import FORMAT as LITE_FORMAT
from restyle.nets.lite import load_lite
from restyle.nets.training import psnr

PHOTOS = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "content"


@torch.no_grad()
def reconstruct(encoder, decoder, image: torch.Tensor, bf16: bool) -> torch.Tensor:
    level = decoder.level
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        feats = encoder(image, [level])[level]
        return decoder.decode(feats.float(), image.shape[-2:])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("decoders", nargs="+")
    ap.add_argument("--size", type=int, default=512, help="long side in pixels")
    ap.add_argument("--photos", default=str(PHOTOS))
    ap.add_argument("--fp32", action="store_true", help="no bfloat16 autocast")
    ns = ap.parse_args(argv)
    photos = sorted(p for p in Path(ns.photos).iterdir()
                    if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not photos:
        print(f"no photos in {ns.photos}", file=sys.stderr)
        return 2
    vgg = get_vgg()
    print("| decoder | photo | PSNR (dB) | SSIM (Y) |\n| --- | --- | --- | --- |")
    from safetensors import safe_open
    for path in ns.decoders:
        with safe_open(path, "pt") as f:
            lite = (f.metadata() or {}).get("format") == LITE_FORMAT
        if lite:
            model = load_lite(path)
            encoder, decoder = model.encoder, model.decoder
        else:
            encoder, decoder = vgg, load_decoder(path)
        scores = []
        for photo in photos:
            pil = imaging.load_image(photo)
            img = imaging.to_tensor(imaging.resize(pil, imaging.fit_size(*pil.size, ns.size)))
            out = reconstruct(encoder, decoder, img, not ns.fp32)
            scores.append((float(psnr(out, img)[0]), ssim_luminance(out, img)))
            print(f"| {Path(path).name} | {photo.name} | {scores[-1][0]:.2f} | {scores[-1][1]:.3f} |",
                  flush=True)
        mean = [sum(s[k] for s in scores) / len(scores) for k in (0, 1)]
        print(f"| {Path(path).name} | **mean of {len(scores)}** | **{mean[0]:.2f}** | "
              f"**{mean[1]:.3f}** |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
