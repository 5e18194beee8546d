"""Exit 0 when two checkpoints hold the same network weights bit for bit, else say where they differ.

Probes that re-train a run to see checkpoints it did not keep (bench/pretrained25_early_probe.sh)
rest on one-thread training repeating itself exactly; this checks it at a step both runs kept,
so the lengths judged belong to the run the benchmark table already holds.

    python bench/same_weights.py A.pt B.pt
"""

from __future__ import annotations

import sys

import torch


def network_weights(path: str) -> dict[str, torch.Tensor]:
    """The checkpoint's `algorithm` tensors: the networks the run acts and continues with."""
    state = torch.load(path, map_location="cpu", weights_only=True)["algorithm"]
    flat: dict[str, torch.Tensor] = {}

    def walk(node, prefix: str) -> None:
        if isinstance(node, torch.Tensor):
            flat[prefix] = node
        elif isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else str(key))
        elif isinstance(node, (list, tuple)):
            for index, value in enumerate(node):
                walk(value, f"{prefix}.{index}")

    walk(state, "")
    return flat


def main(first: str, second: str) -> int:
    a, b = network_weights(first), network_weights(second)
    if a.keys() != b.keys():
        print(f"different tensors: {sorted(a.keys() ^ b.keys())[:5]}", file=sys.stderr)
        return 1
    differ = [key for key in a if not torch.equal(a[key], b[key])]
    if differ:
        worst = max(differ, key=lambda k: (a[k].float() - b[k].float()).abs().max().item())
        gap = (a[worst].float() - b[worst].float()).abs().max().item()
        print(f"{len(differ)} of {len(a)} tensors differ (largest: {worst}, {gap:.3g})", file=sys.stderr)
        return 1
    print(f"same weights: {len(a)} tensors of {first} and {second}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1], sys.argv[2]))
