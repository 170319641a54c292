"""Train a small PyTorch model: learning rate x width, 3 seeds, one GPU per run.

    pip install torch && python examples/gpu_train.py          # every GPU, one run each
    metalab run examples/gpu_train.py --gpus 0,1 --runs-per-gpu 2

The top level asks CUDA whether it is there, as most training scripts do; each run's
process imports this file itself, so that works. Without a GPU the runs train on the CPU.
"""

import torch

import metalab

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


@metalab.operation
def train(params, seeds, capture):
    torch.manual_seed(seeds.derive("torch") % 2**63)  # same run ID, same numbers
    x = torch.randn(2048, 16, device=DEVICE)
    y = (x[:, :4].sum(dim=1, keepdim=True) > 0).float()
    model = torch.nn.Sequential(
        torch.nn.Linear(16, params["width"]), torch.nn.ReLU(), torch.nn.Linear(params["width"], 1)
    ).to(DEVICE)
    optimizer = torch.optim.Adam(model.parameters(), lr=params["lr"])
    for step in range(200):
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        loss.backward()
        optimizer.step()
        if step % 20 == 0:
            capture.metric("loss", loss.item(), step=step)
    capture.metric("final_loss", loss.item())
    capture.metric("device", str(DEVICE))


exp = metalab.Experiment(
    name="gpu_train",
    version="1",
    context={},
    operation=train,
    params=metalab.grid(lr=[1e-3, 1e-2], width=[32, 128]),
    seeds=metalab.seeds(base=0, replicates=3),
    resources={"gpus": 1} if torch.cuda.is_available() else {},
)

if __name__ == "__main__":
    print(metalab.run(exp).result().report())
