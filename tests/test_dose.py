"""Chapter 6's dose-matched analysis (report.dose) on synthetic records."""

import pytest

from sam_hallucination.report import dose


def rec(method, rho, seed, acc, q=0.0):
    return {"config": {"method": method, "rho": rho, "seed": seed, "switch_frac": q},
            "status": "ok", "final": {"test_acc": acc / 100}}


def test_mean_radius_is_the_dose():
    assert dose.mean_radius("switch", 1.0, 0.3) == 0.7
    assert dose.mean_radius("rho-decay", 0.5) == 0.25
    assert dose.mean_radius("switch", 0.5, 0.3) == 0.35  # not 0.35000000000000003
    assert dose.mean_radius("sam", 2.0) == 2.0 and dose.mean_radius("sgd", 0.0) == 0.0


def test_a_remedy_that_only_lowers_the_dose_does_not_beat_it():
    seeds = (10, 11, 12)
    recs = [rec("sam", 1.0, s, 50 + s - 10) for s in seeds]
    recs += [rec("sam", 0.7, s, 60 + 0.5 * (s - 10)) for s in seeds]
    recs += [rec("sam", 0.5, s, 62 + 0.1 * (s - 11)) for s in seeds]
    recs += [rec("switch", 1.0, s, 60 + 0.5 * (s - 10) + (0.3, -0.2, 0.1)[s - 10], q=0.3)
             for s in seeds]  # = its dose, give or take noise
    recs += [rec("rho-decay", 1.0, s, 66 + (s - 10), q=0.0) for s in seeds]  # beats rho/2 by ~4
    t = dose.dose_effects(recs).set_index(["method", "against"])
    assert t.loc[("switch", "its dose"), "verdict"] == "undecided"
    assert t.loc[("switch", "full ρ"), "verdict"] == "beats"
    assert t.loc[("rho-decay", "its dose"), "constant ρ"] == 0.5
    assert t.loc[("rho-decay", "its dose"), "verdict"] == "beats"
    k, n, p = dose.design_sign_test(dose.dose_effects(recs))
    assert n == 12 and k >= 10


def test_two_seeds_never_decide_and_the_rule_meets_the_best_fixed_q():
    recs = [rec("sam", 1.0, s, 50) for s in (0, 1)] + [rec("sam", 0.7, s, 60) for s in (0, 1)]
    recs += [rec("switch", 1.0, s, 70 + s, q=0.3) for s in (0, 1)]
    t = dose.dose_effects(recs)
    assert set(t["verdict"]) == {"undecided"} and (t["seeds"] == 2).all()
    recs += [rec("switch", 1.0, s, 60 + s, q=0.1) for s in (0, 1)]
    recs += [rec("switch-signal", 1.0, s, 70.5 + s) for s in (0, 1)]
    r = dose.rule_effects(recs, min_seeds=2).set_index("against")
    assert r.loc["best fixed q = 0.3", "difference"] == pytest.approx(0.5)
    assert r.loc["constant SAM", "verdict"] == "beats"
    curve = dose.switch_curve(recs, 1.0)
    assert list(curve["switch_frac"]) == [0.0, 0.1, 0.3]


def test_the_views_and_sentences_carry_the_intervals():
    seeds = (10, 11, 12)
    recs = [rec("sam", 1.0, s, 50 + s - 10) for s in seeds]
    recs += [rec("sam", 0.7, s, 60 + 0.5 * (s - 10)) for s in seeds]
    recs += [rec("switch", 1.0, s, 64 + (0.3, -0.2, 0.1)[s - 10] + 0.5 * (s - 10), q=0.3)
             for s in seeds]
    e = dose.dose_effects(recs)
    text = dose.dose_text(e)
    assert text.startswith("SGD then SAM 30% minus constant SAM at its mean radius: +4.1 [")
    assert "(beats, 3 seeds)" in text
    view = dose.dose_view(e)
    assert "SAM 0.7" in view and "+4.1 [" in view
    assert dose.dose_text(e.iloc[0:0]).startswith("No remedy run")
    c = dose.constant_curve(recs)
    assert list(c["rho"]) == [0.7, 1.0] and c.loc[0, "low"] < c.loc[0, "mean"] < c.loc[0, "high"]
    assert "30%" in dose.switch_view(dose.switch_curve(recs, 1.0))


def test_plot_dose_puts_each_remedy_at_its_dose():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = [rec("sam", r, s, 60 - 5 * r + s) for r in (0.7, 1.0) for s in (0, 1)]
    recs += [rec("switch", 1.0, s, 70 + s, q=0.3) for s in (0, 1)]
    fig, ax = plt.subplots()
    dose.plot_dose(ax, recs)
    xs = [float(line.get_xdata()[0]) for line in ax.lines if line.get_marker() == "s"]
    assert xs == [pytest.approx(0.7)]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "constant SAM (95% band)", "SGD then SAM 30%"]
    plt.close(fig)


def test_findings_answer_in_order_and_say_what_is_not_measured():
    seeds = (10, 11, 12)
    recs = [rec("sam", 1.0, s, 50 + s - 10) for s in seeds]
    recs += [rec("sam", 0.7, s, 60 + 0.5 * (s - 10)) for s in seeds]
    recs += [rec("switch", 1.0, s, 64 + (0.3, -0.2, 0.1)[s - 10] + 0.5 * (s - 10), q=0.3)
             for s in seeds]
    e = dose.dose_effects(recs)
    empty = dose.rule_effects([])
    f = dose.findings(e, dose.switch_curve(recs, 1.0), empty, e.iloc[0:0])
    assert list(f["question"])[0] == "Does SGD then SAM 30% beat its dose?"
    assert f.loc[0, "answer"] == "beats at ρ = 1" and f.loc[0, "evidence"].startswith("ρ 1: +4.1 [")
    assert f.loc[1, "answer"] == "not yet measured"  # no decay runs
    assert f.loc[2, "answer"] == "not yet measured (2 of 7 q)"
    assert "warm start 30% vs its dose" in dose.findings_view(f)
    assert dose.findings_text(f).startswith("* **Does SGD then SAM 30% beat its dose?** Beats at")
    assert (f.loc[3:, "answer"] == "not yet measured").all()
