"""ONNX Runtime, shared by the classifier's and the YOLO detector's in-memory ONNX backends.

Both export their torch network to ONNX bytes when they load and run it here on the CPU, so the two
backends of one model always carry the same weights and nothing extra is shipped or written to disk.
"""
from __future__ import annotations

import importlib.util
from typing import Any


def onnx_available() -> bool:
    """True when both ONNX Runtime and the `onnx` package (torch's exporter needs it) are installed."""
    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx"))


def cpu_session(graph: bytes, threads: int) -> Any:
    """An ONNX Runtime CPU session for an in-memory graph, `threads` intra-op threads, one inter-op thread
    (the graphs here are single chains; more would only compete for the 2 cores), and quiet logs."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, int(threads))
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(graph, opts, providers=["CPUExecutionProvider"])


def export_to_bytes(module: Any, example: Any, input_names: list[str], output_names: list[str],
                    dynamic_axes: dict[str, dict[int, str]]) -> bytes:
    """`module` as an ONNX graph (opset 17, TorchScript exporter), in memory. Works inside a caller's
    `torch.inference_mode()` too, which the exporter cannot trace through."""
    import io
    import warnings

    import torch

    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter announces its own deprecation
        torch.onnx.export(module, example, buf, input_names=input_names, output_names=output_names,
                          dynamic_axes=dynamic_axes, opset_version=17, dynamo=False)
    return buf.getvalue()
