"""Build llama-cpp-python once per machine, with flags that cannot fault on this CPU, and reuse it.

Why: pip builds llama.cpp with `-march=native`, which on CPUs with AMX (Intel Sapphire Rapids and
later) turns on llama.cpp's AMX kernels. llama.cpp asks Linux for AMX permission on its main
thread only (upstream pull request 26954, open on 2026-12-02), so its worker threads die with
SIGILL (`tileloadd`) on the first prompt of more than a few tokens.

What this does instead:
- x86-64: GGML_NATIVE=OFF, and each instruction set turned on only if /proc/cpuinfo lists it
  (SSE4.2, AVX, AVX2, BMI2, FMA, F16C, AVX-VNNI, AVX-512 F/VBMI/VNNI/BF16). AMX is always off.
- arm64 and anything else: GGML_NATIVE=OFF and the compiler's baseline for the architecture.
- `SEEDLOOP_LLAMA_NATIVE=1`: llama.cpp's own native build (fastest; may fault on AMX CPUs).
- Only the library is built: no llava/mtmd library, no tests, tools or examples.
- The wheel is kept in ~/.cache/seedloop/wheels/<version>-<hash of the flags>/, so every venv and
  every clone on this machine reuses it. pip's own wheel cache is not used: its key ignores
  CMAKE_ARGS, so it would hand back a wheel built with other flags.

Prints the wheel's path on stdout (progress goes to stderr). Not handled: cross-compiling, or
Windows and macOS (there pip's default build is fine: no AMX).
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

VERSION = "0.3.36"

# /proc/cpuinfo flag -> ggml CMake option. Order matters only for readability.
X86_FLAGS = {
    "sse4_2": "GGML_SSE42",
    "avx": "GGML_AVX",
    "avx2": "GGML_AVX2",
    "bmi2": "GGML_BMI2",
    "fma": "GGML_FMA",
    "f16c": "GGML_F16C",
    "avx_vnni": "GGML_AVX_VNNI",
    "avx512f": "GGML_AVX512",
    "avx512vbmi": "GGML_AVX512_VBMI",
    "avx512_vnni": "GGML_AVX512_VNNI",
    "avx512_bf16": "GGML_AVX512_BF16",
}
ALWAYS = ["-DLLAVA_BUILD=OFF", "-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DGGML_AMX_BF16=OFF"]


def cpu_flags(cpuinfo: str) -> set[str]:
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def cmake_args(machine: str, flags: set[str], native: bool) -> list[str]:
    if native:
        return ["-DGGML_NATIVE=ON", "-DLLAVA_BUILD=OFF"]
    args = ["-DGGML_NATIVE=OFF"]
    if machine in ("x86_64", "amd64"):
        # subtle: with GGML_NATIVE=OFF ggml turns AVX2/FMA/F16C ON by default, so every option
        # is set explicitly, ON or OFF, or a CPU without AVX2 would fault.
        args += [f"-D{opt}={'ON' if flag in flags else 'OFF'}" for flag, opt in X86_FLAGS.items()]
    return args + ALWAYS


def cache_dir() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "seedloop" / "wheels"


def build(args: list[str]) -> Path:
    key = hashlib.sha256(" ".join([VERSION, platform.machine(), sys.version.split()[0], *args]).encode())
    target = cache_dir() / f"llama-cpp-python-{VERSION}-{key.hexdigest()[:12]}"
    wheels = sorted(target.glob("*.whl")) if target.is_dir() else []
    if wheels:
        print(f"llama-cpp-python {VERSION}: reusing {wheels[0]}", file=sys.stderr)
        return wheels[0]
    print(f"llama-cpp-python {VERSION}: building once for this machine (several minutes)\n"
          f"  CMAKE_ARGS={' '.join(args)}", file=sys.stderr)
    target.parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, CMAKE_ARGS=" ".join(args),
               CMAKE_BUILD_PARALLEL_LEVEL=str(os.cpu_count() or 2))
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-cache-dir",
                        "--no-binary", "llama-cpp-python", "-w", tmp, f"llama-cpp-python=={VERSION}"],
                       env=env, check=True, stdout=sys.stderr)
        # atomic: a killed build leaves no folder that a later run would take as finished
        os.replace(tmp, target)
        Path(tmp).mkdir()  # so TemporaryDirectory's cleanup finds what it expects
    return next(target.glob("*.whl"))


def main() -> None:
    native = os.environ.get("SEEDLOOP_LLAMA_NATIVE", "") not in ("", "0")
    info = Path("/proc/cpuinfo")
    flags = cpu_flags(info.read_text()) if info.exists() else set()
    print(build(cmake_args(platform.machine().lower(), flags, native)))


if __name__ == "__main__":
    try:
        main()
    except subprocess.CalledProcessError as e:
        sys.exit(f"llama-cpp-python build failed (exit {e.returncode}); see the compiler output above")
