#!/usr/bin/env bash
# Create or update the project's virtual environment, idempotently:
#   1. a venv in .venv with the pinned requirements (torch==2.13.0 CPU wheel, ROS 2 Kilted wheels);
#   2. the ROS 2 wheels' CMake exports pointed at this machine's Python headers;
#   3. gymnast_interfaces built with CMake and installed into the venv prefix;
#   4. the gymnast_* Python packages installed editable.
# Each step re-runs only when its inputs changed (a hash stamp per step).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="${GYMNAST_VENV:-$root/.venv}"
cd "$root"

hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }
stamp_ok() { [ -f "$venv/.stamp-$1" ] && [ "$(cat "$venv/.stamp-$1")" = "$2" ]; }
stamp_set() { echo "$2" > "$venv/.stamp-$1"; }

if [ ! -x "$venv/bin/python" ]; then
  echo "[bootstrap] creating $venv"
  python3.11 -m venv "$venv" 2>/dev/null || python3 -m venv "$venv"
fi
# shellcheck disable=SC1091
. "$venv/bin/activate"

req_hash=$(hash_of requirements.txt)
if ! stamp_ok requirements "$req_hash"; then
  echo "[bootstrap] installing pinned requirements"
  python -m pip install --quiet --upgrade pip
  python -m pip install --quiet -r requirements.txt
  # The ROS wheels' exported CMake targets name the wheel builder's include paths.
  pyinc=$(python -c "import sysconfig; print(sysconfig.get_paths()['include'])")
  npinc=$(python -c "import numpy; print(numpy.get_include())")
  { grep -rlZ /opt/python/cp311-cp311 "$venv/share" --include='*.cmake' || true; } | xargs -0 -r sed -i \
    "s#/opt/python/cp311-cp311/include/python3.11#$pyinc#g; s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$npinc#g"
  stamp_set requirements "$req_hash"
fi

ifc_hash=$(hash_of requirements.txt $(find src/gymnast_interfaces -type f | sort))
if ! stamp_ok interfaces "$ifc_hash"; then
  echo "[bootstrap] building gymnast_interfaces"
  rm -rf build/gymnast_interfaces && mkdir -p build
  AMENT_PREFIX_PATH="$venv" CMAKE_PREFIX_PATH="$venv" cmake -S src/gymnast_interfaces -B build/gymnast_interfaces \
    -DCMAKE_INSTALL_PREFIX="$venv" -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$venv/bin/python" >build/interfaces.log 2>&1 \
    || { tail -30 build/interfaces.log; exit 1; }
  cmake --build build/gymnast_interfaces -j2 >>build/interfaces.log 2>&1 || { tail -30 build/interfaces.log; exit 1; }
  cmake --install build/gymnast_interfaces >>build/interfaces.log 2>&1 || { tail -30 build/interfaces.log; exit 1; }
  stamp_set interfaces "$ifc_hash"
fi

pkg_hash=$(hash_of requirements.txt src/*/setup.py src/*/package.xml)
if ! stamp_ok packages "$pkg_hash"; then
  echo "[bootstrap] installing gymnast packages (editable)"
  for pkg in gymnast_core gymnast_world_model gymnast_policy gymnast_reward gymnast_robot gymnast_pipelines gymnast_bringup; do
    [ -f "src/$pkg/setup.py" ] && python -m pip install --quiet --no-deps --no-build-isolation -e "src/$pkg"
  done
  stamp_set packages "$pkg_hash"
fi
