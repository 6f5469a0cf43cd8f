"""Re-derive a prior's token layout and token model (stage 3) without retraining its networks.

Used when a change to the *statistics tokens* (``xr_d2ar.model.stats``: ``stat_grid``, the block-mean
level) adds or moves non-learned tokens only: every weight shape and every learned computation stays
as trained (the encoder still computes its ``K - S`` learned tokens; fewer are kept), so the weights
are copied as they are, the architecture fields given by ``--set`` are changed, and the token model
(frequency tables and held-out bits per position) is fitted again, exactly as stage 3 of training
does, on the tokens of the same training tiles (the tile bank is rebuilt from the pack with the
training run's own options and seed). Then measure what the tokens of held-out dates cost, the
rate ``compress(ratio=)`` plans with: ``python -m xr_d2ar.train.evaluate --prior OUT --token-bits``.

    python benchmarks/gpu/refit_token_model.py --prior runs/gpu/run/d2ar-default.safetensors \
        --pack .gpu/pack --set stat_grid=2 --out runs/refit/d2ar-default
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

from xr_d2ar.model.checkpoint import read_prior, save_prior
from xr_d2ar.model.config import ModelConfig
from xr_d2ar.model.net import D2arNet
from xr_d2ar.model.token_model import fit_token_model
from xr_d2ar.train.data import TileBank, load_pack


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prior", required=True)
    ap.add_argument("--pack", required=True, help="tile pack folder (its train/ part is used)")
    ap.add_argument("--set", nargs="*", default=[], metavar="FIELD=INT[,INT...]",
                    help="architecture fields to change (a comma-separated value sets a list)")
    ap.add_argument("--device", default="cpu", help="where to encode the training tiles (cpu, cuda)")
    ap.add_argument("--out", required=True, help="output stem (<out>.safetensors + <out>.json)")
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args()
    t0 = time.time()
    state, _, config, sha, _ = read_prior(args.prior)
    arch = dict(config["architecture"])
    for item in args.set:
        key, value = item.split("=", 1)
        if key not in arch and key not in ModelConfig.__dataclass_fields__:
            raise SystemExit(f"unknown architecture field {key!r}")
        arch[key] = [int(v) for v in value.split(",")] if "," in value else int(value)
    cfg = ModelConfig.from_dict(arch)
    net = D2arNet(cfg)
    net.load_state_dict(state)  # every shape is unchanged, or this raises
    net.eval().to(args.device)
    tc = config["training"]["config"]
    bank = TileBank(load_pack(f"{args.pack}/train"), tile=cfg.tile_size, stats=config["normalisation"],
                    sensors=config["sensors"], geo_octaves=cfg.geo_octaves, cloud_weight=tc["cloud_weight"],
                    tiles_per_area=tc["tiles_per_area"], capacity=tc["capacity"], seed=tc["seed"], device=args.device)
    tokens = []
    with torch.no_grad():
        for b in bank.all_batches(args.batch):
            emb = net.vae.embed_bands(b.wavelength, b.bandwidth)
            tokens.append(net.encode(b.x, b.data, emb).cpu().numpy())
    tokens = np.concatenate(tokens)
    freq, bits = fit_token_model(tokens, cfg.codebook_size, seed=tc["seed"])
    config = dict(config)
    config["architecture"] = cfg.to_dict()
    config["token_bits"] = [float(b) for b in bits]
    config["metrics"] = dict(config.get("metrics", {}), token_bits={"training_rows_total": float(bits.sum())},
                             n_train_tiles=len(bank))
    config["metrics"].pop("held_out", None)
    config["metrics"].pop("check", None)
    config["refit"] = {"from_sha256": sha, "set": args.set, "n_tiles": len(bank), "wall_s": time.time() - t0,
                       "torch": torch.__version__, "device": args.device,
                       "command": "python benchmarks/gpu/refit_token_model.py " + " ".join(
                           f"--set {' '.join(args.set)}" if a == "set" else f"--{a} {getattr(args, a)}"
                           for a in ("prior", "pack", "set", "device", "out") if getattr(args, a))}
    names = {n for n, _ in net.named_parameters()}
    weights, _ = save_prior(args.out, {k: v.cpu() for k, v in net.state_dict().items()}, freq, config,
                            param_names=names)
    print(json.dumps({"weights": str(weights), "n_tiles": len(bank), "bits_total": float(bits.sum()),
                      "bits_stat": float(bits[: cfg.n_stat_total].sum()), "wall_s": time.time() - t0}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
