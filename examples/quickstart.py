"""The Quick Example of the original metalab README, with the two helpers it leaves to you.

python examples/quickstart.py      # 18 runs into ./runs; a second call starts no job

It ends with one line per learning rate and epoch count (loss as mean ± std over the
three seeds), where the results are, and the next commands to try.
"""

from dataclasses import dataclass

import numpy as np

import metalab


@dataclass
class Model:
    """A linear model y = x @ weights, fitted to a fixed synthetic target."""

    weights: np.ndarray


def init_model(rng: np.random.Generator) -> Model:
    """Random initial weights (the README leaves this helper to the user)."""
    return Model(weights=rng.normal(size=8))


_TARGET = np.linspace(-1.0, 1.0, 8)


def train_epoch(model: Model, lr: float) -> float:
    """One gradient step on the squared distance to the target; returns the loss."""
    gradient = 2.0 * (model.weights - _TARGET)
    model.weights = model.weights - lr * gradient
    return float(np.sum((model.weights - _TARGET) ** 2))


@metalab.operation
def train_model(params, seeds, capture):
    # Initialize model with reproducible random weights
    rng = seeds.numpy()
    model = init_model(rng)

    # Train with swept hyperparameters
    for epoch in range(params["epochs"]):
        loss = train_epoch(model, lr=params["learning_rate"])
        capture.metric("loss", loss, step=epoch)

    # Capture final results
    capture.metric("final_loss", loss)
    capture.artifact("weights", model.weights, kind="numpy")


exp = metalab.Experiment(
    name="hyperparameter_sweep",
    version="1.0",
    context={},
    operation=train_model,
    params=metalab.grid(
        learning_rate=[1e-4, 1e-3, 1e-2],
        epochs=[50, 100],
    ),
    seeds=metalab.seeds(base=42, replicates=3),
)

results = metalab.run(exp, store="./runs").result()  # ./runs is also the CLI's default
print(results.report())  # results.to_dataframe() has one row per run
