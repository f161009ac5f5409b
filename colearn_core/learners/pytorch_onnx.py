"""A PyTorch model as ONNX, for :meth:`PytorchLearner.mli_get_current_model`."""

from __future__ import annotations

import importlib.util
import io
import logging
import warnings
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)


def export_onnx(model: nn.Module, example_input: Any) -> Any | None:
    """``model`` as an ``onnx.ModelProto`` (input ``input``, output ``output``, the batch
    axis dynamic so any batch size runs), exported by the TorchScript exporter from
    ``example_input`` in eval mode; ``None`` if ``onnx`` is missing or the export fails
    (logged). With DP the original module is exported: opacus' hooks do nothing in eval
    mode."""
    if importlib.util.find_spec("onnx") is None:
        return None
    import onnx

    was_training = model.training
    buffer = io.BytesIO()
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # the TorchScript exporter, on purpose: the dynamo one needs onnxscript
            warnings.filterwarnings("ignore", category=DeprecationWarning,
                                    module=r"torch\.onnx")
            warnings.filterwarnings("ignore", message=".*legacy TorchScript-based ONNX")
            torch.onnx.export(  # (a file-like object works, as the docs say)
                model, (example_input,), buffer,  # type: ignore[arg-type]
                dynamo=False,
                input_names=["input"], output_names=["output"],
                dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
            )
        return onnx.load_model_from_string(buffer.getvalue())
    except Exception as exc:  # noqa: BLE001  export support varies by model and version
        log.warning("ONNX export failed (%s: %s); returning the weights instead",
                    type(exc).__name__, exc)
        return None
    finally:
        model.train(was_training)
