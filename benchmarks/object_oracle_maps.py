"""What insertion and deletion say about maps that sit exactly on the game's objects.

    python benchmarks/object_oracle_maps.py --data runs/pac/data --agent runs/pac/agent.safetensors
    python benchmarks/object_oracle_maps.py --data runs/pac/data --agent runs/pac/agent.safetensors --seed 1

Scores "oracle" maps on the states ``vmask-live evaluate --n N --seed S`` scores (a seeded sample
of the dataset's test split): for each object region (the boxes ``evaluate`` uses, dilated 2
pixels), a map that is 1 on the region and 0 elsewhere, plus a seeded noise of 1e-3 so that the
order inside and outside the region is random instead of raster order; and a map of pure noise.
Same agent, reference (``--explainer``'s, the background by default) and 50 steps as the report.
Prints one markdown table. A map on the objects the agent reacts to can only reach a low
deletion if removing those objects lowers the agent's probability of its action faster than
removing random pixels does.
"""

from __future__ import annotations

import argparse

import torch

import vmask_live as vm
from vmask_live.dataset import Dataset
from vmask_live.evaluate import ObjectSettings, _object_states, _read_states
from vmask_live.metrics import evaluate_maps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="a dataset collected with an object annotator")
    parser.add_argument("--agent", required=True)
    parser.add_argument("--explainer", default="default:MsPacman", help="whose reference to delete with")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0, help="the test sample's seed (as evaluate's) and the noise's")
    args = parser.parse_args()
    ds = Dataset(args.data)
    if not ds.has_objects:
        raise SystemExit(f"{args.data!r} stores no game objects: collect it for a game with an object annotator")
    idx = ds.sample_indices("test", args.n, args.seed)
    x, a, _ = _read_states(ds, idx)
    objects = _object_states(ds, idx, ObjectSettings(dilate=2, seed=args.seed))
    agent = vm.load_agent(args.agent)
    reference = vm.load_explainer(args.explainer).reference
    gen = torch.Generator().manual_seed(args.seed)
    print(f"{len(x)} test states of {args.data} (seed {args.seed}); Acc / Del / Ins as `evaluate` reports them\n")
    print("| map | region's share of the frame | Acc ↑ | Del ↓ | Ins ↑ |")
    print("|---|---|---|---|---|")
    rows = [(name, region.float()) for name, region in objects.regions.items() if region.any()]
    rows.append(("noise only", torch.zeros(x.shape[0], *x.shape[-2:])))
    for name, region in rows:
        maps = region + 1e-3 * torch.rand(region.shape, generator=gen)
        res = evaluate_maps(agent, x, a, maps, reference, n_steps=50, with_lle=False)
        print(
            f"| {name} | {region.mean().item():.1%} | {res['accuracy']:.0f} | {res['deletion']:.1f} | {res['insertion']:.1f} |"
        )


if __name__ == "__main__":
    main()
