"""Published dense peak FLOP/s of the accelerators tfapp recognises: what MFU divides by on them.

    python -c "from tfapp import peaks; print(peaks.published('NVIDIA H200', 'bfloat16'))"

Per chip, dense (no 2:4 sparsity), from the vendors' datasheets. Which column a run uses follows from its compute
dtype and what the frameworks do with it by default:
- float32 on NVIDIA GPUs with TF32 tensor cores (A100 and later): JAX (default matmul precision) and TensorFlow
  (`enable_tensor_float_32_execution`, on by default) run float32 matmuls and convolutions in TF32, so the TF32
  peak is the ceiling; GPUs without TF32 (T4) use their float32 peak.
- TPUs publish only bfloat16; with default precision their float32 matmuls run as bfloat16 passes, so both
  dtypes use it.
- float16 uses the bfloat16 column (the same tensor-core rate on these chips), except on T4 (no bfloat16 units:
  its float16 figure; bfloat16 there is emulated in float32).
A device not in the table (CPUs, other chips) gets a measured peak instead (`tfapp.flops.device_peak`).
"""
import re

TERA = 1e12

# (regex on the device kind as JAX or TensorFlow name it, chip name, {column: TFLOP/s}); the first match wins, so
# the variants (PCIe, NVL) come before their family.
CHIPS = (
    (r"h200.*nvl", "NVIDIA H200 NVL", {"float32": 60.0, "tf32": 417.5, "bfloat16": 835.5}),
    (r"h200", "NVIDIA H200 SXM", {"float32": 67.0, "tf32": 494.7, "bfloat16": 989.4}),
    (r"h100.*nvl", "NVIDIA H100 NVL", {"float32": 60.0, "tf32": 417.5, "bfloat16": 835.5}),
    (r"h100.*pcie", "NVIDIA H100 PCIe", {"float32": 51.0, "tf32": 378.0, "bfloat16": 756.0}),
    (r"h100", "NVIDIA H100 SXM", {"float32": 67.0, "tf32": 494.7, "bfloat16": 989.4}),
    (r"a100", "NVIDIA A100", {"float32": 19.5, "tf32": 156.0, "bfloat16": 312.0}),
    (r"\bl4\b", "NVIDIA L4", {"float32": 30.3, "tf32": 60.0, "bfloat16": 121.0}),
    (r"\bt4\b", "NVIDIA T4", {"float32": 8.1, "float16": 65.0, "bfloat16": 8.1}),
    (r"tpu v4\b(?!.*lite)", "TPU v4", {"bfloat16": 275.0}),
    (r"tpu v5 ?(lite|e)", "TPU v5e", {"bfloat16": 197.0}),
    (r"tpu v5p?\b", "TPU v5p", {"bfloat16": 459.0}),
    (r"tpu v6 ?(lite|e)", "TPU v6e", {"bfloat16": 918.0}),
)


def chip(device_kind):
    """(chip name, its columns) for a device kind such as "NVIDIA H100 80GB HBM3" or "TPU v5 lite", or None."""
    kind = (device_kind or "").lower()
    for pattern, name, columns in CHIPS:
        if re.search(pattern, kind):
            return name, columns
    return None


def column(columns, compute_dtype):
    """The datasheet column that bounds matmuls in `compute_dtype` on a chip with these columns."""
    if compute_dtype == "float16" and "float16" in columns:
        return "float16"
    if compute_dtype in ("bfloat16", "float16") or "float32" not in columns:
        return "bfloat16"
    return "tf32" if "tf32" in columns else "float32"


def published(device_kind, compute_dtype):
    """(peak FLOP/s of one chip, a sentence saying which figure it is) for a recognised device, else None."""
    found = chip(device_kind)
    if found is None:
        return None
    name, columns = found
    which = column(columns, compute_dtype)
    reason = {"tf32": f"{compute_dtype} matmuls run in TF32 by default",
              "bfloat16": "" if compute_dtype == "bfloat16" else f"{compute_dtype} matmuls run at this rate"}.get(which)
    return columns[which] * TERA, (f"published dense {which} peak of the {name}, {columns[which]:g} TFLOP/s per "
                                   f"chip" + (f" ({reason})" if reason else ""))
