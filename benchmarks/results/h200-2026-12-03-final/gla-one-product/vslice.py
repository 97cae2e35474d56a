"""GLA backward value-slice width at the fla-1.3B GLA shape: correctness (bf16 vs float64 chunk ref) and time."""
import json, sys, torch
sys.path.insert(0, ".")
import importlib
tc = importlib.import_module("linmem.kernels.gla.triton_chunk")
from tests.test_kernels_triton_gla import _check_gla
from benchmarks.kernels import time_op
rows = []
for width in (128, 256, 512):
    tc.MAX_BWD_V = width
    row = {"MAX_BWD_V": width}
    for name, args in (("K256-V512", (1, 2048, 2, 256, 512)), ("K128-V256", (1, 2048, 2, 128, 256))):
        try:
            _check_gla(*args, 64, [0, 300, 1100, 2048], True, True, torch.bfloat16, "cuda", 5e-3, 1e-2, ref="chunk")
            row[name] = "pass"
        except AssertionError as e:
            row[name] = f"FAIL {e}"
    row.update({k: v for k, v in time_op("gla", 8, 4096, 4, 256, 512).items() if k.endswith("ms")})
    rows.append(row)
    print(json.dumps(row), flush=True)
json.dump(rows, open(sys.argv[1], "w"), indent=1)
