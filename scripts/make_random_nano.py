"""Write the bundled default model folder, osdface/assets/osdface-nano, with RANDOM nano weights (seed 0).

A placeholder so that `osdface restore` works on a fresh offline machine before a trained nano model exists; the
training issue replaces it with trained weights. Usage: python scripts/make_random_nano.py [OUT]
"""

import sys
from pathlib import Path

from osdface import OSDFacePipeline

out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parents[1] / "osdface/assets/osdface-nano"
pipe = OSDFacePipeline.from_preset("nano", seed=0, lora=False)
pipe.config.extra = {
    "title": "OSDFace nano (random weights)",
    "card": {"Weights": "RANDOM initialisation (seed 0), not trained: outputs are not restorations. A placeholder "
                        "so that the command line and the app run offline; train a real nano model with the "
                        "training commands, or use the sd21 model converted from the authors' weights."},
}
pipe.save_pretrained(out)
print(f"wrote {out}")
