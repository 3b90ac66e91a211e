"""Regenerate the ONNX graphs shipped inside the bundled nano model (osdface/assets/osdface-nano/*.onnx).

    python scripts/export_bundled_onnx.py            # after the bundled weights change (retraining)

The graphs point into the folder's own safetensors files as ONNX external data (byte offsets), so they add only
what the exporter computed itself; ``osdface_onnx.json`` records the sha256 of those files, and
tests/test_bundled_onnx.py fails when the weights changed after the export. The command line's default backend
(``--backend auto``) runs these graphs with ONNX Runtime for a few faces on a CPU (no torch import).
"""

from __future__ import annotations

import sys
import time


def main() -> int:
    import torch

    from osdface import OSDFacePipeline
    from osdface.onnx_export import export_into_model_folder
    from osdface.weights import BUNDLED_NANO

    torch.set_num_threads(max(1, torch.get_num_threads()))
    t0 = time.perf_counter()
    pipe = OSDFacePipeline.from_pretrained(BUNDLED_NANO, torch_dtype="fp32", local_files_only=True)
    sizes = export_into_model_folder(pipe, BUNDLED_NANO, log=lambda line: print("  " + line, flush=True))
    print(f"wrote the graphs into {BUNDLED_NANO} in {time.perf_counter() - t0:.0f} s: "
          f"{sizes['external_bytes'] / 1e6:.1f} MB read from the safetensors files, "
          f"{sizes['embedded_bytes'] / 1e6:.2f} MB inside the graphs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
