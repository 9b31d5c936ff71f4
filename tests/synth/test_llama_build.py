"""The installed llama.cpp must not fault on AMX CPUs, and the build flags follow the CPU.

llama.cpp's AMX kernels die with SIGILL on worker threads (upstream pull request 26954, unreleased
on 2026-12-02), so the installed build must not contain them. Remove the first test once the
upstream fix ships in a llama-cpp-python release.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _llama_wheel():
    spec = importlib.util.spec_from_file_location("llama_wheel", ROOT / "scripts" / "llama_wheel.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_installed_llama_cpp_has_no_amx_kernels():
    import llama_cpp

    info = llama_cpp.llama_print_system_info().decode()
    assert "CPU" in info                      # the call really reports the CPU backend's features
    assert "AMX_INT8 = 1" not in info, info


def test_flags_follow_the_cpu_and_never_turn_on_amx():
    lw = _llama_wheel()
    old_cpu = lw.cmake_args("x86_64", {"sse4_2", "avx"}, native=False)   # a CPU without AVX2
    assert "-DGGML_NATIVE=OFF" in old_cpu
    assert "-DGGML_AVX=ON" in old_cpu and "-DGGML_AVX2=OFF" in old_cpu and "-DGGML_FMA=OFF" in old_cpu
    amx_cpu = lw.cmake_args("x86_64", {"avx2", "fma", "f16c", "avx512f", "amx_tile", "amx_int8"}, native=False)
    assert "-DGGML_AVX512=ON" in amx_cpu and "-DGGML_AMX_INT8=OFF" in amx_cpu and "-DGGML_AMX_TILE=OFF" in amx_cpu
    assert not any("GGML_AVX" in a for a in lw.cmake_args("aarch64", set(), native=False))
    assert lw.cmake_args("x86_64", set(), native=True)[0] == "-DGGML_NATIVE=ON"


def test_cpu_flags_reads_proc_cpuinfo_format():
    lw = _llama_wheel()
    text = "processor\t: 0\nflags\t\t: fpu sse4_2 avx2 amx_tile\nbogomips\t: 1\n"
    assert lw.cpu_flags(text) == {"fpu", "sse4_2", "avx2", "amx_tile"}
