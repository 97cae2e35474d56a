"""Q-Delta / GDN fwd+bwd with the WY-forward probe scratch off and on, interleaved in one process (H200)."""
import json, os, sys
sys.path.insert(0, os.getcwd())
import torch, triton
from triton.testing import do_bench
from benchmarks.kernels import fwd_bwd_call, make_inputs, op_function

rows = []
for T in (2048, 8192):
    B = 32768 // T
    data = {}
    for op in ("gated_delta_rule", "qdelta_rule"):
        inp = make_inputs(op, B, T, 16, 128, 128)
        for t in inp.values():
            t.requires_grad_(True)
        data[op] = (inp, torch.randn(B, T, 16, 128, device="cuda", dtype=torch.bfloat16))
    for rnd in range(3):
        for label, op, scratch in (("gdn", "gated_delta_rule", "0"), ("qdelta_scratch0", "qdelta_rule", "0"),
                                   ("qdelta_scratch1", "qdelta_rule", "1")):
            os.environ["LINMEM_QDELTA_PROBE_SCRATCH"] = scratch
            inp, go = data[op]
            fn = op_function(op)
            ms_f = do_bench(lambda: fn(**inp), warmup=25, rep=200)
            ms_fb = do_bench(fwd_bwd_call(fn, inp, go), warmup=25, rep=200)
            rows.append(dict(T=T, B=B, round=rnd, variant=label, fwd_ms=ms_f, fwd_bwd_ms=ms_fb))
            print(rows[-1], flush=True)
summary = {}
for T in (2048, 8192):
    med = lambda v: sorted(r["fwd_bwd_ms"] for r in rows if r["T"] == T and r["variant"] == v)[1]
    for v in ("qdelta_scratch0", "qdelta_scratch1"):
        summary[f"T{T} {v} / gdn fwd+bwd (median of 3 rounds)"] = med(v) / med("gdn")
print(json.dumps(summary, indent=1))
json.dump(dict(device=torch.cuda.get_device_name(), triton=triton.__version__, torch=torch.__version__,
               shape="B*T=32K H16 d128 bf16", rows=rows, summary=summary),
          open(os.path.join(os.environ.get("OUT", "."), "qdelta_ab.json"), "w"), indent=1)
