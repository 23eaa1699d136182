"""The stock-stack model: leave-one-source-out error on published stock Hugging Face fine-tunes, beside the tuned
model and the naive constant-fraction-of-peak model on the same rows; the op-mix scaling against traced graphs.

    python bench/bench_stack.py
"""

from __future__ import annotations

from gpuplan.perf.opmix import load_profile, step_mix
from gpuplan.perf.stacks import load_stock_constants
from gpuplan.perf.stockfit import load_rows, report
from gpuplan.workload import BUILTIN_MODELS, ModelArch


def main() -> None:
    print("== keras stack vs published stock-stack measurements (gpuplan/perf/data/stock_stack_measurements.csv) ==")
    print("error = |predicted step time / published - 1| per row; speed-up = |predicted / published mixed speed-up - 1|")
    print("\n".join(report(load_rows(), load_stock_constants())))
    print()
    print("== Op-mix scaling: the bundled profile (fitted on tiny traced graphs) vs graphs it was not fitted on ==")
    print(f"{'config':26s} {'policy':15s} {'bytes pred/traced':>18s} {'kernels pred/traced':>20s}")
    for c in load_profile()["checks"]:
        arch = BUILTIN_MODELS.get(c["name"]) or ModelArch(
            name=c["name"], vocab_size=c["vocab"], hidden_size=c["hidden"], num_hidden_layers=c["layers"],
            num_attention_heads=c["heads"], intermediate_size=c["intermediate"])
        mix = step_mix(arch, c["batch"], c["seq"], c["policy"])
        print(f"{c['name']:26s} {c['policy']:15s} {mix.memory_bytes / c['traced_memory_bytes']:18.3f} "
              f"{mix.kernels / c['traced_kernels']:20.3f}")
    print("target: within 10% (0.900-1.100)")


if __name__ == "__main__":
    main()
