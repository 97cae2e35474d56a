"""Print the environment (VAR=value lines) that switches on each opt-in form that passed its GPU tests and is faster."""
import json, re, sys
from pathlib import Path
S = Path(sys.argv[1])
log = (S / "gpu_tests_split_squaring_separate.log").read_text()
failed = set(re.findall(r"^FAILED (tests/[\w.]+)", log, re.M))
finished = re.search(r"=+ .*(passed|failed).* in [\d.]+s", log) is not None
try:
    ms = json.loads((S / "forms_timing.json").read_text())["ms"]
except Exception as e:
    print("no timing", e, file=sys.stderr); ms = {}
def faster(op, mode, var, val):
    base, opt = ms.get(f"{op} {mode} {var}=default"), ms.get(f"{op} {mode} {var}={val}")
    return (base is not None and opt is not None and opt < base), base, opt
gla_ok = finished and not failed & {"tests/test_kernels_triton_gla.py", "tests/test_kernels_gpu_determinism.py", "tests/test_model_gpu.py"}
gdn_ok = finished and not failed & {"tests/test_kernels_triton_gdn.py", "tests/test_kernels_triton_qdelta.py", "tests/test_kernels_gpu_determinism.py", "tests/test_model_gpu.py"}
g = faster("gla", "fwdbwd", "LINMEM_GLA_BWD_INTER", "separate"); d = faster("gated_delta_rule", "fwd", "LINMEM_GDN_WY_FWD_INVERSE", "squaring")
decision = {"tests_finished": finished, "failed_files": sorted(failed), "gla_inter_separate": [gla_ok, *g], "gdn_wy_fwd_squaring": [gdn_ok, *d]}
print(json.dumps(decision), file=sys.stderr)
(S / "forms.json").write_text(json.dumps(decision, indent=2))
if gla_ok and g[0]: print("LINMEM_GLA_BWD_INTER=separate")
if gdn_ok and d[0]: print("LINMEM_GDN_WY_FWD_INVERSE=squaring")
