"""The sweep of the example pipeline: Monte Carlo estimates of pi, 3 sizes x 4 replicates."""

import metalab


@metalab.operation
def estimate_pi(params, seeds, capture):
    n = params["n_samples"]
    rng = seeds.numpy()
    x, y = rng.random(n), rng.random(n)
    capture.metric("pi_estimate", 4.0 * (x**2 + y**2 <= 1).mean())


exp = metalab.Experiment(
    name="pipeline_pi",
    version="1",
    context={},
    operation=estimate_pi,
    params=metalab.grid(n_samples=[100, 1000, 10000]),
    seeds=metalab.seeds(base=7, replicates=4),
)
