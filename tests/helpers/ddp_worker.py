"""One rank of the DDP test (tests/test_distributed.py), run by torchrun: trains a tiny model with the
pipeline's epoch loop and writes what the test compares into OUT (argv[1])."""

import json
import os
import sys

import torch
from torch.utils.data import Dataset

from mctformer.training import loop
from mctformer.training.distributed import setup, shuffled_loader, world, wrap


class Indexed(Dataset):
    """Sample i: a fixed input, its target, and i itself (to see which rank got it)."""

    def __init__(self, size: int) -> None:
        generator = torch.Generator().manual_seed(1)
        self.inputs = torch.randn(size, 4, generator=generator)
        self.targets = self.inputs.sum(dim=1, keepdim=True)

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, index: int):
        return self.inputs[index], self.targets[index], index


def main(out: str) -> None:
    rank, _ = world()
    device = setup(torch.device("cpu"))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    torch.save(model.state_dict(), os.path.join(out, f"initial_rank{rank}.pt"))
    trained = wrap(model, device, sync_batchnorm=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    seen: list[int] = []
    saves: list[int] = []
    real_save = loop.save_checkpoint

    def recording_save(path, payload):
        saves.append(payload["epoch"])
        real_save(path, payload)

    loop.save_checkpoint = recording_save

    def loss_of_batch(batch):
        inputs, targets, indices = batch
        seen.extend(indices.tolist())
        return torch.nn.functional.mse_loss(trained(inputs), targets), {}

    dataset = Indexed(32)
    loop.train_epochs(
        model, optimizer, lambda generator: shuffled_loader(dataset, 8, generator), loss_of_batch,
        set_lr=lambda step: None, epochs=2, steps_per_epoch=4, seed=0,
        resume_path=os.path.join(out, "resume.pt"), run_fingerprint="ddp-test", device=device, amp=False, amp_dtype="float16", curves=None,
    )
    torch.save(model.state_dict(), os.path.join(out, f"final_rank{rank}.pt"))
    with open(os.path.join(out, f"rank{rank}.json"), "w") as handle:
        json.dump({"seen": seen, "saves": saves}, handle)


if __name__ == "__main__":
    main(sys.argv[1])
