"""The Ray backend's submission order (no Ray needed: the submit call is faked)."""

from sam_hallucination.runs.config import RunConfig


def test_a_probed_sam_run_waits_for_its_seeds_sgd_run():
    """Once every task was submitted at once: a probed SAM task could start before its SGD
    run had left the snapshots its control reads (and record ``sgd_control: missing``)."""
    from sam_hallucination.runs.ray_backend import submit_in_order

    base = RunConfig(dataset="fashion-mnist", model="mlp", epochs=1, probe=True)
    sam = [base.replace(method="sam", rho=r) for r in (0.5, 1.0)]
    sgd = base.replace(method="sgd", rho=0.0)
    other = base.replace(method="sam", rho=0.5, seed=7)  # its SGD run is not in the sweep
    calls = []

    def submit(c, after):
        calls.append((c.run_id(), after))
        return f"ref:{c.run_id()}"
    pending = submit_in_order(submit, [*sam, other, sgd])  # SAM listed before its SGD run
    order = [rid for rid, _ in calls]
    assert order.index(sgd.run_id()) < min(order.index(c.run_id()) for c in sam)
    after = dict(calls)
    assert all(after[c.run_id()] == f"ref:{sgd.run_id()}" for c in sam)
    assert after[other.run_id()] is None and after[sgd.run_id()] is None
    assert sorted(c.run_id() for c in pending.values()) == sorted(order)
