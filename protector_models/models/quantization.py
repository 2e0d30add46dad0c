"""``quantize: int8``: a model's backbone with int8 linear layers, for faster and smaller inference on the CPU.

Dynamic quantisation (PyTorch's ``quantize_dynamic`` with the fbgemm/x86 kernels): each linear layer's weights are
stored in int8, one scale per output channel, and each input's activations are scaled to int8 on the fly, one
scale per forward pass. The head, embeddings and norms stay float32. No calibration data is needed, and the
result loads from the same float checkpoint.

Activations use all 8 bits on CPUs with VNNI (int32 accumulation, nothing can overflow): half the rounding error
of PyTorch's default, which keeps to 7 bits so that CPUs without VNNI (16-bit intermediate sums) never saturate;
those CPUs keep the default.

What it costs: scores shift a little from float32 (see docs/configuration.md for the measured change on the
dev sets), and since one activation scale covers a whole batch, an answer's score can differ by a little with
the answers it is batched with. Use it where speed or memory on a CPU matters more; GPUs run ``bfloat16``.
"""

from __future__ import annotations

import warnings

import torch
from transformers import PreTrainedModel


def quantize_int8(model: PreTrainedModel) -> PreTrainedModel:
    """``model`` with the linear layers of its backbone in dynamic int8 (in place), for the CPU.

    The backbone is the submodule named by ``model.base_model_prefix`` (``bert``, ``model``, ...); a model
    without one has every linear layer but its output head quantised.
    """
    if next(model.parameters()).device.type != "cpu":
        raise ValueError("int8 dynamic quantisation runs on the CPU only; move the model to the CPU first")
    try:
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
    except ImportError:  # deprecated in torch 2.10 and due to go; then this option goes with it
        raise ValueError(
            f"quantize: int8 needs torch.ao.quantization, which torch {torch.__version__} lacks; drop `quantize`"
        ) from None

    prefix = getattr(model, "base_model_prefix", "")
    backbone = getattr(model, prefix, None) if prefix else None
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    root, stem = (backbone, f"{prefix}.") if isinstance(backbone, torch.nn.Module) else (model, "")
    targets = {
        f"{stem}{name}": per_channel_dynamic_qconfig
        for name, module in root.named_modules()
        if isinstance(module, torch.nn.Linear) and module is not head
    }
    if not targets:
        raise ValueError(f"{type(model).__name__} has no linear layers to quantise")
    with warnings.catch_warnings():  # torch points eager quantisation users at torchao; this API still works
        warnings.filterwarnings("ignore", message=r".*torch\.ao\.quantization is deprecated")
        warnings.filterwarnings("ignore", message=r"torch\.quantize_per_tensor, torch\.quantize_per_channel")
        mapping = {torch.nn.Linear: _full_range_linear()} if _has_vnni() else None
        quantized = quantize_dynamic(model.float(), targets, dtype=torch.qint8, mapping=mapping, inplace=True)
    return quantized


def _has_vnni() -> bool:
    """Whether this CPU has VNNI (AVX512-VNNI or AVX-VNNI): int8 dot products that accumulate in int32."""
    probe = getattr(torch.cpu, "_is_vnni_supported", None)
    try:
        return bool(probe()) if probe is not None else False
    except RuntimeError:
        return False


def _full_range_linear() -> type[torch.nn.Module]:
    from torch.ao.nn.quantized.dynamic import Linear

    class FullRangeDynamicLinear(Linear):
        """PyTorch's dynamic int8 linear layer with 8-bit activations (``reduce_range=False``)."""

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            packed = self._packed_params._packed_params
            return torch.ops.quantized.linear_dynamic(x, packed, reduce_range=False).to(x.dtype)

    return FullRangeDynamicLinear
