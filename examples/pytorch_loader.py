"""Scenes of a gqn shard directory through a PyTorch DataLoader: python examples/pytorch_loader.py DIR"""
import sys

import torch
from torch.utils.data import DataLoader

from gqn.data import Scenes

if __name__ == "__main__":  # DataLoader workers may import this file again (spawn: macOS, Windows)
    scenes = Scenes(sys.argv[1])  # scenes[i]: images uint8 (V, H, W, 3), viewpoints (V, 7), cameras (V, 5)
    loader = DataLoader(scenes, batch_size=8, shuffle=True, num_workers=2)
    for step, scene_batch in enumerate(loader):  # dicts of tensors with a leading batch axis B
        images = scene_batch["images"].permute(0, 1, 4, 2, 3).to(torch.float32) / 255  # (B, V, 3, H, W)
        viewpoints = scene_batch["viewpoints"]  # float32 (B, V, 7)
        print(f"batch {step}: images {tuple(images.shape)} {images.dtype}, viewpoints {tuple(viewpoints.shape)}")
        if step == 2:
            break
