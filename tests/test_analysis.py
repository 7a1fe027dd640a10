"""Tables, coverage, provenance and verdicts from result records (no training: fake records)."""

from __future__ import annotations

from dataclasses import asdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from sam_hallucination import report as an  # noqa: E402
from sam_hallucination.runs.config import RunConfig  # noqa: E402
from sam_hallucination.runs.store import write_json_atomic  # noqa: E402
from sam_hallucination.runs.sweeps import get_sweep  # noqa: E402


def probe(rho: float, grad=1.0, grad_se=0.01, step=0.5, step_se=0.01, sgd_drop=0.01,
          sam_drop=0.0, loss_se=1e-3) -> dict:
    cont = lambda opt, d: {"optimizer": opt, "loss_drop": d, "test_acc_after": 0.5}  # noqa: E731
    return {"rho": rho, "stall": {"grad_norm": grad, "grad_se": grad_se, "sam_step_norm": step,
                                  "sam_step_se": step_se, "ratio": step / grad, "loss": 0.1,
                                  "loss_se": loss_se},
            "sgd_continuation": cont("sgd", sgd_drop),
            "sam_continuation": cont("sam", sam_drop) if rho > 0 else None}


def record(c: RunConfig, acc: float | None, sweep: str, status: str = "ok", pr: dict | None = None,
           device: str = "cuda:0") -> dict:
    # test accuracy: acc - 0.1 during the main schedule, acc in the constant-LR epochs
    eps = [{"epoch": e + 1, "test_acc": acc and acc - 0.1 * (e < c.epochs), "train_loss": 1 / (e + 1),
            "trainable_weight_norm": 10.0 + e} for e in range(c.epochs + c.final_constant_lr_epochs)]
    eps[-1].update(test_acc=acc, train_loss=0.5)  # the loader checks: final = last epoch
    return {"run_id": c.run_id(), "sweep": sweep, "config": asdict(c), "status": status,
            "final": {"test_acc": acc, "train_loss": 0.5}, "epochs": eps, "wall_time_s": 2.0,
            "probe": pr,
            "provenance": {"device": device, "device_name": "Fake GPU", "torch": "9.9",
                           "git": {"commit": "abcdef1234567890", "dirty": False}}}


def write(tmp_path, sweep: str, recs: list[dict]) -> None:
    for r in recs:
        write_json_atomic(tmp_path / sweep / f"{r['run_id']}.json", r)


@pytest.fixture
def rho_runs():
    return get_sweep("cifar10-rho").runs


def test_summary_mean_std_and_divergence(rho_runs):
    sgd = [c for c in rho_runs if c.method == "sgd"]
    sam1 = [c for c in rho_runs if c.method == "sam" and c.rho == 1.0]
    recs = [record(sgd[0], 0.90, "x"), record(sgd[1], 0.88, "x"), record(sgd[2], 0.86, "x"),
            record(sam1[0], 0.60, "x"), record(sam1[1], None, "x", status="diverged")]
    rows = {r["cell"]: r for r in an.summarize(recs)}
    r = rows[("sgd", 0.0, 0.0)]
    assert r["n"] == 3 and r["mean"] == pytest.approx(0.88) and r["std"] == pytest.approx(0.02)
    s = rows[("sam", 1.0, 0.0)]
    assert s["n"] == 1 and s["std"] is None and s["diverged"] == 1 and s["seeds"] == [0, 1]
    text = an.summary_table(an.summarize(recs), "t")
    assert "SGD" in text and "88.0 ± 2.0" in text and "60.0 (1 seed)" in text
    # "main" reads the last epoch of the main schedule, before the constant-LR epoch
    assert an.metric(recs[0], "test_acc", "main") == pytest.approx(0.90 - 0.1)
    assert an.metric(record(sam1[0], 0.6, "x", pr=probe(1.0)), "stall.ratio", "probe") == 0.5
    with pytest.raises(ValueError, match="at must be"):
        an.metric(recs[0], "test_acc", "middle")


def test_smoke_fallback_is_labelled_and_filtered(tmp_path):
    smoke = get_sweep("smoke-cifar").runs
    write(tmp_path, "smoke-cifar", [record(c, 0.2, "smoke-cifar", pr=probe(c.rho), device="cpu")
                                    for c in smoke])
    rs = an.load_set("cifar10-rho", tmp_path)
    assert rs.smoke and rs.label == an.SMOKE_LABEL and rs.present() == 0
    assert {r["config"]["method"] for r in rs.records} == {"sgd", "sam"}  # the sweep's methods
    assert len(an.missing_runs(rs)) == 21
    assert an.coverage_text(rs).startswith("cifar10-rho: 0/21 runs present")
    assert an.provenance_text(rs).startswith(an.SMOKE_LABEL)
    assert "cpu (Fake GPU)" in an.provenance(rs)["devices"]
    assert an.stall_verdict(rs).startswith(f"*{an.SMOKE_LABEL}.* Verdict owed to the GPU runs")
    remedy = an.load_set("cifar10-remedy", tmp_path)
    assert {r["config"]["method"] for r in remedy.records} == {"sgd", "sam", "switch", "rho-decay"}
    fig, axes = plt.subplots(1, 4)
    an.plot_vs_rho(axes[0], remedy, title="acc")
    an.plot_curves(axes[1], rs, "test_acc")
    an.plot_probe(axes[2:], rs)
    assert an.SMOKE_LABEL in axes[0].get_title() and an.SMOKE_LABEL in axes[3].get_title()
    plt.close(fig)


def test_real_results_coverage_and_verdict(tmp_path, rho_runs):
    seed0 = [c for c in rho_runs if c.seed == 0]
    # rho >= 1: stalled (step within noise, gradient not) and SGD escapes; small rho: not stalled
    recs = []
    for c in seed0:
        pr = probe(c.rho, step=0.01, step_se=0.01, sgd_drop=0.05) if c.rho >= 1 else probe(c.rho)
        recs.append(record(c, 0.8, "cifar10-rho", pr=pr))
    write(tmp_path, "cifar10-rho", recs)
    rs = an.load_set("cifar10-rho", tmp_path)
    assert not rs.smoke and rs.present() == 7 and rs.label == "sweep cifar10-rho"
    assert an.coverage_text(rs) == "cifar10-rho: 7/21 runs present (seed 1: 7 missing, seed 2: 7 missing)"
    v = an.stall_verdict(rs)
    assert v.startswith("*GPU grid (sweep `cifar10-rho`).* Yes, at ρ ∈ {1, 2}")
    assert "ρ=0.5: 1/0/0 of 1, 0.50" in v and "ρ=1: 1/1/1 of 1, 0.01" in v
    rows = an.probe_rows(rs)
    assert [r["stalled"] for r in rows if r["cell"][0] == "sgd"] == [False]  # rho = 0
    assert "stalled" in an.format_probe_table(rows, "p")
    # no stall anywhere: the verdict says no; SGD beating SAM alone is not enough
    write(tmp_path, "cifar10-rho", [record(c, 0.8, "cifar10-rho", pr=probe(c.rho)) for c in seed0])
    assert an.stall_verdict(an.load_set("cifar10-rho", tmp_path)).startswith(NO)
    # stalled, but SGD gains no more from the SAM end point than from SGD's: not a hallucination
    write(tmp_path, "cifar10-rho", [record(c, 0.8, "cifar10-rho",
                                           pr=probe(c.rho, step=0.01, step_se=0.01)) for c in seed0])
    rows = an.probe_rows(an.load_set("cifar10-rho", tmp_path))
    assert any(r["stalled"] for r in rows) and not any(r["escapes"] for r in rows)
    v = an.stall_verdict(an.load_set("cifar10-rho", tmp_path))
    assert v.startswith("*GPU grid (sweep `cifar10-rho`).* A stall without an escape at "
                        "ρ ∈ {0.05, 0.1, 0.2, 0.5, 1, 2}") and "No," not in v
    assert an.stall_summary(an.load_set("cifar10-rho", tmp_path))["kind"] == "stall"


NO = "*GPU grid (sweep `cifar10-rho`).* No, at ρ ∈ {0.05, 0.1, 0.2, 0.5, 1, 2}"


def test_unresolved_gradient_makes_the_verdict_undecided(tmp_path, rho_runs):
    seed0 = [c for c in rho_runs if c.seed == 0]
    # gradient within 3 floors everywhere: a tiny SAM step proves nothing
    recs = [record(c, 0.8, "cifar10-rho", pr=probe(c.rho, grad=0.1, grad_se=0.05, step=0.01,
                                                    step_se=0.01, sgd_drop=0.05))
            for c in seed0]
    write(tmp_path, "cifar10-rho", recs)
    rs = an.load_set("cifar10-rho", tmp_path)
    assert an.stall_summary(rs)["kind"] == "undecided"
    v = an.stall_verdict(rs)
    assert "Undecided at every probed radius" in v and "ρ=2: 0/0/0 of 1, 0.10" in v
    rows = an.probe_rows(rs)
    assert not any(r["stalled"] or r["resolved"] for r in rows)
    assert "n/a" in an.format_probe_table(rows, "p")
    # resolved at rho >= 1 only: "no" there, "undecided" below
    recs = [record(c, 0.8, "cifar10-rho", pr=probe(c.rho, grad=1.0 if c.rho >= 1 else 0.1,
                                                    grad_se=0.05)) for c in seed0]
    write(tmp_path, "cifar10-rho", recs)
    s = an.stall_summary(an.load_set("cifar10-rho", tmp_path))
    assert s["kind"] == "no"
    assert {d["rho"]: d["status"] for d in s["radii"]} == {
        0.05: "undecided", 0.1: "undecided", 0.2: "undecided", 0.5: "undecided", 1.0: "no",
        2.0: "no"}
    v = an.stall_verdict(an.load_set("cifar10-rho", tmp_path))
    assert "No, at ρ ∈ {1, 2}" in v and "Undecided at ρ ∈ {0.05, 0.1, 0.2, 0.5}" in v


def test_continuation_text_compares_with_the_matched_control(tmp_path, rho_runs):
    seed0 = [c for c in rho_runs if c.seed == 0 and c.rho in (0.0, 1.0, 2.0)]
    recs = []
    for c in seed0:
        pr = probe(c.rho, sgd_drop=0.02 if c.rho else 0.005)
        if c.rho:
            pr["sgd_control"] = {"status": "ok", "loss_drop": 0.06, "loss_gap": 0.01, "epoch": 2}
        recs.append(record(c, 0.8, "cifar10-rho", pr=pr))
    write(tmp_path, "cifar10-rho", recs)
    t = an.continuation_text(an.load_set("cifar10-rho", tmp_path))
    assert t == ("SGD continuation lowered the training loss from the SAM end points by 0.020, "
                 "from the SGD runs' end points by 0.005, and from the SGD runs' snapshots at a "
                 "matched loss by 0.060; it gained more than the control, by over 3 standard "
                 "errors, in 0/2 SAM runs.")


def test_not_run_rows(tmp_path):
    text = an.not_run_rows(["cifar100-resnet18-paper", "cifar10-resnet18"], tmp_path)
    assert "cifar100-resnet18-paper     39 runs  not run here" in text
    c = get_sweep("cifar10-resnet18").runs[0]
    write(tmp_path, "cifar10-resnet18", [record(c, 0.7, "cifar10-resnet18")])
    assert "1/10 runs present" in an.not_run_rows(["cifar10-resnet18"], tmp_path)


def test_remedy_summary_and_switch_plot(tmp_path):
    runs = get_sweep("cifar10-remedy").runs
    acc = {"sgd": 0.9, "sam": 0.5, "rho-decay": 0.7}
    recs = []
    for c in runs:
        if c.rho in (0.0, 1.0):
            a = acc.get(c.method, 0.5 + c.switch_frac) + 0.01 * c.seed  # 30% warm start: 0.8
            recs.append(record(c, a, "cifar10-remedy"))
    write(tmp_path, "cifar10-remedy", recs)
    rs = an.load_set("cifar10-remedy", tmp_path)
    s = an.remedy_summary(rs)
    assert s == ("*GPU grid (sweep `cifar10-remedy`).* ρ=1: SAM 51.0%, best warm start 30% "
                 "81.0% (+30.0 points; per seed +30.0, +30.0, +30.0), decayed ρ 71.0%.")
    fig, ax = plt.subplots()
    an.plot_vs_switch(ax, rs, title="t")
    assert len(ax.get_legend().get_texts()) == 2  # rho = 1 and SGD
    plt.close(fig)
    smoke = an.ResultSet("cifar10-remedy", [], runs, tier="smoke")
    assert an.remedy_summary(smoke).startswith(f"*{an.SMOKE_LABEL}.* Owed to the GPU runs")


def _tier(tmp_path, sweep, acc, probe_kw=None):
    recs = []
    for c in get_sweep(sweep).runs:
        if c.seed < 2:
            a = acc(c) + 0.01 * c.seed
            recs.append(record(c, a, sweep, pr=probe(c.rho, **(probe_kw or {}))))
    write(tmp_path, sweep, recs)


def test_chapter_sets_and_tier_agreement(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar10-cpu-rho --device cpu"):
        an.chapter_sets("cifar10-rho", tmp_path)
    falls = lambda c: 0.9 if c.method == "sgd" else 0.9 - 0.2 * c.rho  # noqa: E731
    _tier(tmp_path, "cifar10-cpu-rho", falls, {"grad": 0.1, "grad_se": 0.05})
    rs, cpu = an.chapter_sets("cifar10-rho", tmp_path)
    assert rs.tier == "cpu" and cpu is None and rs.sweep == "cifar10-cpu-rho"
    d = an.tier_description(rs, "cifar10-rho", tmp_path)
    assert d.startswith(f"**{an.CPU_TIER_LABEL}** (sweep `cifar10-cpu-rho`, 14 runs")
    assert "the GPU grid is owed (cifar10-rho: 0/21 runs present" in d
    opening = an.chapter_results("cifar10-rho", tmp_path)  # the chapters' one opening call
    assert opening.main.sweep == "cifar10-cpu-rho" and opening.cpu is None
    assert opening.source == d and opening.provenance == an.provenance_text(rs)
    assert opening.gpu_coverage.startswith("cifar10-rho: 0/21 runs present")
    assert "CPU-scale tier" in opening.banner("SAM against ρ").data
    assert an.sgd_curve_text(rs) == ("SGD test accuracy by epoch (2 seeds; epochs after 8 run "
                                     "at the constant LR): 1: 80.5%, 2: 80.5%, 3: 80.5%, "
                                     "4: 80.5%, 5: 80.5%, 6: 80.5%, 7: 80.5%, 8: 80.5%, "
                                     "9: 90.5%")
    assert an.accuracy_onset(rs) == 0.5  # 0.9 - 0.2 rho is 10 points down at 0.5
    assert an.tier_agreement(rs, None) == ""
    # the GPU grid arrives: it is the main set, the CPU tier the check beside it
    _tier(tmp_path, "cifar10-rho", falls)
    rs, cpu = an.chapter_sets("cifar10-rho", tmp_path)
    assert rs.tier == "gpu" and cpu is not None and cpu.tier == "cpu"
    t = an.tier_agreement(rs, cpu)
    assert "The two tiers differ: the stall verdict is 'no' on the GPU grid and " \
           "'undecided' on the CPU tier." in t
    assert "They agree that SAM falls more than 5 points below SGD from ρ = 0.5" in t
    # same verdicts: they agree
    _tier(tmp_path, "cifar10-cpu-rho", falls)
    _, cpu = an.chapter_sets("cifar10-rho", tmp_path)
    assert "The two tiers agree" in an.tier_agreement(rs, cpu)


def test_tier_agreement_on_the_remedy(tmp_path):
    def acc(c):  # the warm start helps at rho 1 on the GPU grid only
        return {"sgd": 0.9, "sam": 0.5, "rho-decay": 0.6}.get(c.method, 0.5 + c.switch_frac)
    _tier(tmp_path, "cifar10-remedy", acc)
    _tier(tmp_path, "cifar10-cpu-remedy", lambda c: 0.5 if c.method != "sgd" else 0.9)
    rs, cpu = an.chapter_sets("cifar10-remedy", tmp_path)
    t = an.tier_agreement(rs, cpu)
    assert "the warm start's mean gain exceeds the larger seed std at ρ ∈ {0.5, 1, 2} on the GPU grid " \
           "and {} on the CPU tier" in t and t.count("differ") == 1


def test_power_table_pairs_the_same_run_probed_twice(tmp_path):
    base = [c for c in get_sweep("cifar10-cpu-rho").runs if c.seed == 0 and c.rho in (0, 1)]
    strong = [c for c in get_sweep("cifar10-cpu-probe").runs if c.seed == 0 and c.rho in (0, 1)]
    assert [c.replace(probe_batches=16) for c in strong] == base  # twins but for the probe
    write(tmp_path, "cifar10-cpu-rho",
          [record(c, 0.6, "cifar10-cpu-rho", pr=probe(c.rho, grad=0.1, grad_se=0.05))
           for c in base])
    write(tmp_path, "cifar10-cpu-probe",
          [record(c, 0.6 + 0.01 * (c.rho > 0), "cifar10-cpu-probe",
                  pr=probe(c.rho, grad=0.1, grad_se=0.02)) for c in strong])
    t = an.power_table(an.load_set("cifar10-cpu-probe", tmp_path, fallback=None),
                       an.load_set("cifar10-cpu-rho", tmp_path, fallback=None), "t")
    lines = t.splitlines()
    assert lines[0] == "t" and len(lines) == 2 + 4
    assert lines[2].split() == ["SGD", "0", "16", "2.00", "50.00", "—"]
    assert lines[3].split() == ["SGD", "0", "78", "5.00", "50.00", "+0.0000"]
    assert lines[5].split()[-4:] == ["78", "5.00", "50.00", "+0.0100"]
