#!/usr/bin/env python3
"""Makes the JPEG fixtures of JPEGTests once (documentation; the tests never run it). Needs Pillow.

    python3 make_fixtures.py

rgb420.jpg      23x17 RGB, 4:2:0, quality 90 (odd sizes: partial MCUs)
progressive.jpg 23x17 RGB, progressive, quality 85
gray.jpg        9x11 gray
cmyk.jpg        8x8 CMYK (Adobe), which ld refuses
expected.json   each decodable file's pixels as PIL decodes them (Image.open(f).convert("RGB" or "L")),
                planar (CHW) lists, and PIL's sizes after draft() for a few targets of a 97x61 JPEG;
                rgb420.jpg resized by PIL (bilinear, 11x8 and 40x30) and through torchvision's
                Resize(9) + CenterCrop(8) (the evaluation transform of an 8 px model, ratio 0.875).
"""
import json
import sys, types
sys.modules.setdefault("torchvision._meta_registrations", types.ModuleType("torchvision._meta_registrations"))
from PIL import Image, features
from torchvision import transforms

def pattern(w, h):
    im = Image.new("RGB", (w, h))
    im.putdata([((x * 11 + y * 3) % 256, (x * y * 7 + 40) % 256, (255 - x * 9 + y * 13) % 256) for y in range(h) for x in range(w)])
    return im

pattern(23, 17).save("rgb420.jpg", quality=90, subsampling=2)
pattern(23, 17).save("progressive.jpg", quality=85, progressive=True)
pattern(9, 11).convert("L").save("gray.jpg", quality=90)
Image.new("CMYK", (8, 8), (10, 20, 30, 40)).save("cmyk.jpg", quality=90)
pattern(97, 61).save("draft.jpg", quality=90)

def planar(im):
    bands = im.split()
    return [v for b in bands for v in b.getdata()]

out = {"libjpeg_turbo": features.version("libjpeg_turbo")}
for name, mode in [("rgb420.jpg", "RGB"), ("progressive.jpg", "RGB"), ("gray.jpg", "L")]:
    im = Image.open(name).convert(mode)
    out[name] = {"width": im.width, "height": im.height, "pixels": planar(im)}
out["gray_as_rgb"] = planar(Image.open("gray.jpg").convert("RGB"))
drafts = {}
for target in [97, 48, 30, 24, 12, 7]:
    im = Image.open("draft.jpg")
    im.draft("RGB", (target, target))
    drafts[str(target)] = [im.size[0], im.size[1]]
out["draft_97x61"] = drafts
im = Image.open("draft.jpg"); im.draft("RGB", (24, 24)); im = im.convert("RGB")
out["draft_24_pixels"] = planar(im)
src = Image.open("rgb420.jpg").convert("RGB")
out["resize_11x8"] = planar(src.resize((11, 8), Image.BILINEAR))
out["resize_40x30"] = planar(src.resize((40, 30), Image.BILINEAR))
out["eval_8"] = planar(transforms.Compose([transforms.Resize(9), transforms.CenterCrop(8)])(src))
json.dump(out, open("expected.json", "w"))
