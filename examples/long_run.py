"""A run longer than its SLURM time limit: 40 steps of 2 s under a 1-minute limit.

    python examples/long_run.py            # here (Ctrl-C, then run it again: it goes on)
    python examples/long_run.py --slurm    # on SLURM: interrupted, requeued, finished

Each run keeps its state in ``capture.checkpoint_dir`` and stops at ``capture.should_stop()``
(the task's warning before its time limit, a preemption, ``metalab stop``, Ctrl-C); the
same ``metalab.run`` starts it again until it is done.
"""

import json
import sys
import time

import metalab


@metalab.operation
def train(params, seeds, capture):
    path = capture.checkpoint_dir / "state.json"
    state = json.loads(path.read_text()) if path.exists() else {"step": 0, "w": 1.0}
    while state["step"] < params["steps"]:
        if capture.should_stop():
            return  # the state below is saved after every step
        time.sleep(params["seconds"])  # one "training step"
        state["w"] *= 1 - params["lr"]
        capture.metric("loss", state["w"] ** 2, step=state["step"])
        state["step"] += 1
        path.write_text(json.dumps(state))
    capture.metric("final_loss", state["w"] ** 2)
    capture.metric("attempts", capture.attempt)


exp = metalab.Experiment(
    name="long_run",
    version="1",
    context={},
    operation=train,
    params=metalab.grid(lr=[0.05, 0.1], steps=[40], seconds=[2.0]),
    seeds=metalab.seeds(base=0, replicates=1),
)

if __name__ == "__main__":
    executor = None
    if "--slurm" in sys.argv:
        config = metalab.SlurmConfig(time=1, memory="500M", warn_before=20, chunk_size=1)
        executor = metalab.SlurmExecutor(config)
    print(metalab.run(exp, executor=executor).result().report())
