"""Default against opt-in kernel forms in one process, B8 T4K H16 d128 bf16 (GPU only):
GLA fwd+bwd (LINMEM_GLA_BWD_INTER=separate), GDN and Q-Delta fwd and GDN fwd+bwd (LINMEM_GDN_WY_FWD_INVERSE=squaring).

    python benchmarks/kernel_forms.py OUT_DIR     # writes OUT_DIR/forms_timing.json
"""
import json, os, sys
from pathlib import Path
import torch
from triton.testing import do_bench
sys.path.insert(0, os.getcwd())
from benchmarks.kernels import make_inputs, result_header
import linmem.kernels as K

def fwd(op, inputs):
    return lambda: getattr(K, op)(**inputs)[0]

out = {}
with K.use_backend("triton"):
    for op, var, val, mode in [("gla", "LINMEM_GLA_BWD_INTER", "separate", "fwdbwd"),
                               ("gated_delta_rule", "LINMEM_GDN_WY_FWD_INVERSE", "squaring", "fwd"),
                               ("qdelta_rule", "LINMEM_GDN_WY_FWD_INVERSE", "squaring", "fwd"),
                               ("gated_delta_rule", "LINMEM_GDN_WY_FWD_INVERSE", "squaring", "fwdbwd")]:
        inputs = make_inputs(op, 8, 4096, 16, 128, 128)
        for t in inputs.values():
            t.requires_grad_(mode == "fwdbwd")
        go = torch.randn_like(getattr(K, op)(**inputs)[0])
        fn = (lambda: getattr(K, op)(**inputs)[0].backward(go)) if mode == "fwdbwd" else fwd(op, inputs)
        for setting in ("default", val):
            if setting == "default":
                os.environ.pop(var, None)
            else:
                os.environ[var] = val
            with torch.no_grad() if mode == "fwd" else torch.enable_grad():
                ms = do_bench(fn, warmup=25, rep=100, return_mode="median")
            out[f"{op} {mode} {var}={setting}"] = ms
            print(op, mode, setting, round(ms, 3), flush=True)
        os.environ.pop(var, None)
Path(sys.argv[1], "forms_timing.json").write_text(json.dumps({**result_header(), "shape": "B8 T4096 H16 d128", "ms": out}, indent=2))
