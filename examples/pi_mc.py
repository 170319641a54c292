"""Estimate pi by Monte Carlo: 3 sample sizes x 3 replicates.

    python examples/pi_mc.py
or, through Snakemake directly:
    metalab compile examples/pi_mc.py && cd runs/pi_mc+0.1 && snakemake --cores 2
"""

import metalab


@metalab.operation
def estimate_pi(params, seeds, capture):
    n = params["n_samples"]
    rng = seeds.numpy()
    x, y = rng.random(n), rng.random(n)
    pi_est = 4.0 * (x**2 + y**2 <= 1).mean()
    capture.metric("pi_estimate", pi_est)
    capture.metric("abs_error", abs(pi_est - 3.141592653589793))


exp = metalab.Experiment(
    name="pi_mc",
    version="0.1",
    context={},
    operation=estimate_pi,
    params=metalab.grid(n_samples=[1000, 10000, 100000]),
    seeds=metalab.seeds(base=42, replicates=3),
)

if __name__ == "__main__":
    results = metalab.run(exp).result()
    print(results.summary())
