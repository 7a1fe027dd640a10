"""Issue 26's invalid inputs and extreme values: each gives a correct result or a one-line
error naming the problem, never a silent wrong answer or a crash. Also the planted bugs the
suite used to miss (the solver's critical-point rule, the iterate's norm floor).
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from sam_hallucination import checks
from sam_hallucination.diagnostics import StallDiagnostics, stall_diagnostics
from sam_hallucination.optim import SAM, global_norm, perturbation
from sam_hallucination.rd import dynamics as D
from sam_hallucination.rd import sam as S
from sam_hallucination.rd.landscapes import DOUBLE_WELL, RING
from sam_hallucination.runs.config import RunConfig
from sam_hallucination.runs.fullbatch.config import FullBatchConfig

torch.set_num_threads(1)
E = D.EndState


# ----------------------------------------------------------------------------- SAM's norm
def linear_with_grads(value: float, adaptive: bool = False) -> tuple[nn.Module, SAM]:
    model = nn.Linear(4, 3)  # 15 parameters, all 0.5; every gradient entry = value
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(0.5)
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.1, lr=0.1, adaptive=adaptive)
    for p in model.parameters():
        p.grad = torch.full_like(p, value)
    return model, opt


@pytest.mark.parametrize("adaptive", [False, True])
@pytest.mark.parametrize("value", [1e-40, 1e-25, 1e30])
def test_sam_perturbs_by_rho_when_the_fp32_norm_under_or_overflows(value, adaptive):
    """fp32 squares of 1e-40 vanish and those of 1e30 overflow: e used to be 0."""
    model, opt = linear_with_grads(value, adaptive)
    w = [p.detach().clone() for p in model.parameters()]
    opt.first_step()
    e = torch.cat([(p.detach() - q).flatten() for p, q in zip(model.parameters(), w, strict=True)])
    want = 0.1 * (0.25 / 0.5 if adaptive else 1.0)  # ρ‖T²g‖/‖Tg‖ with T = |w| = 0.5
    assert float(e.double().norm()) == pytest.approx(want, rel=1e-4)
    assert float(opt.last_grad_norm) == pytest.approx(math.sqrt(15) * value, rel=1e-4)
    grads = [torch.full_like(q, value) for q in w]  # the same through perturbation()
    e2 = torch.cat([t.flatten() for t in perturbation(w, grads, 0.1, adaptive=adaptive)])
    assert float(e2.double().norm()) == pytest.approx(want, rel=1e-4)


def test_sam_norm_is_bitwise_unchanged_where_fp32_is_sound():
    torch.manual_seed(0)
    g = [torch.randn(7, 5), torch.randn(5)]
    n32 = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(g, 2, dtype=torch.float32)))
    assert torch.equal(global_norm(g), n32)
    scale = (1.0 / n32) * 0.3
    e = perturbation([torch.ones_like(t) for t in g], g, 0.3)
    assert all(torch.equal(a, t * scale) for a, t in zip(e, g, strict=True))


def test_zero_gradient_still_gives_zero_perturbation():
    model, opt = linear_with_grads(0.0)
    w = [p.detach().clone() for p in model.parameters()]
    opt.first_step()
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), w, strict=True))


# ----------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("rho", [math.nan, -1.0, math.inf, "0.1"])
def test_load_state_dict_refuses_a_bad_group_rho_and_keeps_the_state(rho):
    model = nn.Linear(3, 2)
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.1, lr=0.1)
    sd = opt.state_dict()
    sd["base"]["param_groups"][0]["rho"] = rho
    with pytest.raises((ValueError, TypeError), match=r"rho \(checkpoint param group 0\)"):
        opt.load_state_dict(sd)
    assert opt.param_groups[0]["rho"] == 0.1


def test_load_state_dict_accepts_numpy_rho():
    model = nn.Linear(3, 2)
    opt = SAM(model.parameters(), torch.optim.SGD, rho=0.1, lr=0.1)
    sd = opt.state_dict()
    sd["base"]["param_groups"][0]["rho"] = np.float32(0.25)
    opt.load_state_dict(sd)
    assert opt.param_groups[0]["rho"] == 0.25 and type(opt.param_groups[0]["rho"]) is float


# ----------------------------------------------------------------------------- R^d functions
def test_iterate_refuses_a_bool_step_count():
    with pytest.raises(ValueError, match="steps"):
        D.iterate(RING, [[0.3, 0.2]], steps=True)


@pytest.mark.parametrize("kw,match", [
    ({"rho": -1.0}, r"rho=-1.0: must be finite and >= 0"),
    ({"rho": math.nan}, r"rho=nan: must be finite"),
    ({"rho": [1.0, 1.0, 1.0]}, r"rho must be a scalar or have shape \(1,\)"),
    ({"rho": "big"}, r"rho='big': must be a real number"),
    ({"x": [[0.3, 0.2, 0.1]]}, r"x must have shape \(B, 2\) or \(2,\), got \(1, 3\)"),
    ({"x": [[[0.3, 0.2]]]}, r"x must have shape \(B, 2\)"),
])
def test_classify_refuses_bad_rho_and_shapes(kw, match):
    args = {"x": [[0.3, 0.2]]} | kw
    x = args.pop("x")
    with pytest.raises((ValueError, TypeError), match=match):
        D.classify(RING, x, **args)


def test_classify_still_marks_non_finite_points_diverged():
    x = [[math.nan, 0.0], [math.inf, 1.0], [0.0, 1.0]]
    assert D.classify(RING, x, rho=np.float32(1.5)).tolist() == [E.DIVERGED, E.DIVERGED,
                                                                  E.MINIMIZER]


@pytest.mark.parametrize("kw,match", [
    ({"steps": -5}, "steps"), ({"steps": True}, "steps"), ({"x0": [math.nan, 0.2]}, "finite"),
    ({"lr": "0.1"}, "lr"), ({"lr": 0.0}, "lr"), ({"variant": "adam"}, "variant"),
])
def test_rd_sam_run_refuses_bad_inputs(kw, match):
    args = {"x0": [0.3, 0.2], "rho": 1.0, "lr": 0.1, "steps": 3} | kw
    with pytest.raises(ValueError, match=match):
        S.run(RING, **args)


def test_hallucination_edges_refuses_single_cells_and_uneven_grids():
    pd = D.phase_diagram(RING, [1.5], [0.1, 0.2], n_starts=2, steps=5)
    with pytest.raises(ValueError, match="one rho value"):
        D.hallucination_edges(pd)
    pd = D.phase_diagram(RING, [1.2, 1.5], [0.1], n_starts=2, steps=5)
    with pytest.raises(ValueError, match="one eta value"):
        D.hallucination_edges(pd)
    pd = D.phase_diagram(RING, [0.5, 1.5, 2.0], [0.1, 0.2], n_starts=2, steps=5)
    with pytest.raises(ValueError, match="rho grid is not uniform"):
        D.hallucination_edges(pd)
    pd = D.phase_diagram(RING, [0.5, 1.5], [0.1, 0.2], n_starts=2, steps=5)
    with pytest.raises(ValueError, match="min_fraction"):
        D.hallucination_edges(pd, min_fraction=1.0)


@pytest.mark.parametrize("x", [[0.0, 0.0], [[0.3, 0.2], [0.0, 0.0]]])
def test_sam_map_jacobian_at_a_critical_point_is_an_error(x):
    with pytest.raises(ValueError, match=r"critical point of f .*not differentiable"):
        D.sam_map_jacobian(RING, x, 1.5, 0.1)


@pytest.mark.parametrize("kw,match", [({"method": "adam"}, "method"),
                                      ({"x": [math.nan, 0.2]}, "finite"),
                                      ({"x": [0.1, 0.2, 0.3]}, "shape")])
def test_sam_map_jacobian_refuses_bad_inputs(kw, match):
    args = {"x": [0.3, 0.2]} | kw
    x = args.pop("x")
    with pytest.raises(ValueError, match=match):
        D.sam_map_jacobian(RING, x, 1.5, 0.1, **args)


def test_usam_and_gd_jacobians_at_a_critical_point_are_finite():
    for method in ("usam", "gd"):
        assert torch.isfinite(D.sam_map_jacobian(RING, [0.0, 0.0], 1.5, 0.1, method)).all()


@pytest.mark.parametrize("matrix", ["torch.full((2, 2), float('nan'), dtype=torch.float64)",
                                    "torch.full((3, 2, 2), float('inf'))",
                                    "sam_map_jacobian(RING, [0.3, 0.2], 1.5, 0.1) * float('nan')"])
def test_nan_jacobian_raises_instead_of_crashing_lapack(matrix):
    """MKL crashed (SIGSEGV) or printed an error and returned NaN: run it in a subprocess."""
    code = ("import torch\nfrom sam_hallucination.rd.dynamics import spectral_radius, "
            "sam_map_jacobian\nfrom sam_hallucination.rd.landscapes import RING\n"
            f"spectral_radius({matrix})\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert p.returncode == 1, (p.returncode, p.stderr[-500:])  # -11 is a crash, 0 silent
    assert "ValueError: spectral_radius: J must be a finite square matrix" in p.stderr
    assert "MKL" not in p.stdout + p.stderr


def test_spectral_radius_refuses_a_non_square_matrix():
    with pytest.raises(ValueError, match="finite square matrix"):
        D.spectral_radius(torch.ones(2, 3))


def test_solver_refuses_tol_zero():
    with pytest.raises(ValueError, match="tol must be a finite real number > 0"):
        D.solve_hallucinated(RING, [0.3, 0.25], 1.5, tol=0)


# ----------------------------------------------------------------------------- planted bugs
@pytest.mark.parametrize("landscape,x0,rho", [
    (RING, [-1.0 + 2.0**-45, 0.0], 1.0),  # x⁺ ≈ the maximizer at 0
    (RING, [-1.0 + 2.0**-45, 0.0], 2.0),  # x⁺ ≈ the circle of minimizers
    (DOUBLE_WELL, [1.0 - 2.0**-45], 2.0),
])
def test_solver_never_calls_a_critical_point_hallucinated(landscape, x0, rho):
    """Planted bug: `ok = r <= tol` without `gn > grad_tol` passed these as converged."""
    s = D.solve_hallucinated(landscape, x0, rho)
    assert s.residual <= 1e-12 and s.grad_norm <= 1e-8
    assert not s.converged and "critical point of f" in s.message


def test_solver_started_at_an_exact_critical_point_says_so():
    """Planted bug: without the in-loop check Newton reports a non-finite Jacobian instead."""
    s = D.solve_hallucinated(RING, [0.0, 0.0], 1.5)
    assert not s.converged and s.message.startswith("iterate reached a critical point")
    assert torch.isfinite(s.x).all()


@pytest.mark.parametrize("early_stop", [True, False])
def test_iterate_from_an_exact_critical_point_stays_there(early_stop):
    """Planted bug: without the norm floor g/‖g‖ is 0/0 = NaN at a critical point."""
    x0 = [[0.0, 0.0], [1.0, 0.0], [0.3, 0.2]]
    res = D.iterate(RING, x0, rho=1.5, eta=0.1, steps=60, early_stop=early_stop)
    assert torch.equal(res.x[:2], torch.tensor([[0.0, 0.0], [1.0, 0.0]], dtype=torch.float64))
    assert torch.isfinite(res.x).all()


# ----------------------------------------------------------------------------- diagnostics
def tiny_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 3))


def batches(n: int = 3) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(8, 4, generator=g), torch.randint(0, 3, (8,), generator=g))
            for _ in range(n)]


def test_stall_diagnostics_refuses_nan_weights():
    model = tiny_model()
    with torch.no_grad():
        model[2].weight[0, 0] = math.nan
    with pytest.raises(ValueError, match=r"parameter '2.weight' has NaN or inf weights"):
        stall_diagnostics(model, nn.functional.cross_entropy, batches(), rho=0.05)


def test_stall_diagnostics_refuses_a_nan_batch_and_restores_the_model():
    model = tiny_model()
    before = [p.detach().clone() for p in model.parameters()]
    bad = batches()
    bad[1] = (torch.full((8, 4), math.nan), bad[1][1])
    with pytest.raises(ValueError, match="batch 1 gives a NaN or inf loss"):
        stall_diagnostics(model, nn.functional.cross_entropy, bad, rho=0.05)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before, strict=True))


def test_looks_stalled_without_noise_floors_claims_no_stall():
    d = stall_diagnostics(tiny_model(), nn.functional.cross_entropy, batches(1), rho=0.05)
    # one batch: no noise floor, so no stall can be claimed (the probe of a tiny sweep)
    assert d.looks_stalled() is False
    ok = StallDiagnostics(**(d.as_dict() | {"grad_se": 0.1, "sam_step_se": 0.1}))
    with pytest.raises(ValueError, match="z must be"):
        ok.looks_stalled(z=math.nan)


def test_stall_diagnostics_accepts_numpy_counts():
    d = stall_diagnostics(tiny_model(), nn.functional.cross_entropy, batches(), rho=np.float32(0.05),
                          bootstrap=np.int64(4), seed=np.int64(0))
    assert d.bootstrap == 4 and type(d.bootstrap) is int and d.rho == pytest.approx(0.05)


# ----------------------------------------------------------------------------- numpy scalars
def test_checks_accept_numpy_scalars_and_refuse_numpy_bools():
    assert checks.check_radius(np.float32(0.5)) == 0.5
    assert checks.check_tol("tol", np.float64(1e-3)) == 1e-3
    assert checks.check_real(np.int64(3), "lr") == 3.0
    with pytest.raises(TypeError, match="rho must be a real number"):
        checks.check_radius(np.bool_(True))


def test_sam_and_rd_functions_accept_numpy_scalars():
    opt = SAM(nn.Linear(3, 2).parameters(), torch.optim.SGD, rho=np.float32(0.05),
              lr=np.float64(0.1), switch_at=np.int64(2), total_steps=np.int64(10))
    assert opt.switch_step == 2 and opt.total_steps == 10
    res = D.iterate(RING, [[0.3, 0.2]], rho=np.float32(1.5), eta=np.float64(0.1),
                    steps=np.int64(10), seed=np.int64(1), check_every=np.int64(5))
    assert int(res.steps[0]) <= 10
    D.classify(RING, res.x, rho=np.float32(1.5), tol_step=np.float32(1e-8))


def test_runconfig_accepts_numpy_scalars_with_the_same_run_id():
    base = {"dataset": "synthetic", "model": "mlp", "method": "sam", "n_train": 64,
            "batch_size": 32}
    a = RunConfig(**base, rho=np.float32(0.5), seed=np.int64(2), epochs=np.int64(3))
    b = RunConfig(**base, rho=0.5, seed=2, epochs=3)
    assert a.run_id() == b.run_id() and type(a.seed) is int and type(a.rho) is float


def test_fullbatchconfig_accepts_numpy_scalars_with_the_same_run_id():
    a = FullBatchConfig(method="sam", rho=np.float64(2.0), seed=np.int64(1), steps=np.int64(10))
    b = FullBatchConfig(method="sam", rho=2.0, seed=1, steps=10)
    assert a.run_id() == b.run_id() and type(a.seed) is int


@pytest.mark.parametrize("kw,exc,match", [
    ({"lr": "0.1"}, TypeError, r"lr='0.1': must be a real number"),
    ({"weight_decay": None}, TypeError, r"weight_decay=None: must be a real number"),
    ({"lr": True}, TypeError, r"lr=True: must be a real number"),
    ({"init_scale": math.nan}, ValueError, r"init_scale=nan: must be a finite number"),
    ({"switch_frac": "0.1"}, TypeError, r"switch_frac='0.1'"),
    ({"label_noise": None}, TypeError, r"label_noise=None"),
])
def test_fullbatchconfig_errors_name_the_field(kw, exc, match):
    with pytest.raises(exc, match=match):
        FullBatchConfig(**kw)


# ----------------------------------------------------------------------------- further probes
def _rd_calls():
    from sam_hallucination.rd import attraction as A
    from sam_hallucination.rd import ring as R

    return [
        ("naive loop steps=-3", lambda: D.naive_sam_loop(RING, [0.3, 0.2], 1.0, 0.1, -3), "steps"),
        ("naive loop rho=nan", lambda: D.naive_sam_loop(RING, [0.3, 0.2], math.nan, 0.1, 3), "rho"),
        ("iterate noise='a'", lambda: D.iterate(RING, [[0.3, 0.2]], noise="a"), "noise='a'"),
        ("disk_starts r_min>radius", lambda: D.disk_starts(3, 0.5, r_min=1.0), "r_min"),
        ("disk_starts radius=nan", lambda: D.disk_starts(3, math.nan), "radius"),
        ("disk_starts n=-1", lambda: D.disk_starts(-1, 1.0), "n must be"),
        ("measured_rate reversed window",
         lambda: D.measured_rate(RING, [0.5, 0.0], 1.5, 0.1, window=(1e-6, 1e-12)), "window"),
        ("linear_rate window past the end",
         lambda: D.linear_rate(np.array([1.0, 0.5, 0.25]), (2, 10)), "window"),
        ("jacobian formula at a critical point",
         lambda: D.sam_map_jacobian_formula(RING, [0.0, 0.0], 1.5, 0.1), "critical point"),
        ("jacobian formula rho=-1",
         lambda: D.sam_map_jacobian_formula(RING, [0.3, 0.2], -1.0, 0.1), "rho"),
        ("sam_objective at a critical point", lambda: S.sam_objective(RING, torch.zeros(2), 1.5),
         "critical point"),
        ("surrogate gradient formula at a critical point",
         lambda: S.sam_objective_grad_formula(RING, torch.zeros(2), 1.5), "critical point"),
        ("tail_map rho=nan", lambda: R.tail_map([math.nan], [0.1], n_starts=2, steps=10, tail=4),
         "rhos"),
        ("tail_map tail=2", lambda: R.tail_map([1.5], [0.1], n_starts=2, steps=10, tail=2), "tail"),
        ("critical_decay k_max=-5", lambda: R.critical_decay(k_max=-5), "k_max"),
        ("critical_decay checkpoint > k_max", lambda: R.critical_decay(k_max=10), "checkpoints"),
        ("disk_quantile_radii(0)", lambda: R.disk_quantile_radii(0), "n must be"),
        ("wilson k>n", lambda: A.wilson_interval(5, 3), "k=5: must be <= n=3"),
        ("offset_start distance<0", lambda: A.offset_start([0.5, 0.0], -1.0), "distance"),
        ("surrogate_gd steps<0", lambda: A.surrogate_gd(RING, [0.5, 0.1], 1.5, 0.1, -3), "steps"),
        ("local_analysis at a critical point", lambda: A.local_analysis(RING, [0.0, 0.0], 1.5, 0.1),
         "critical point"),
    ]


@pytest.mark.parametrize("case", range(len(_rd_calls())))
def test_further_rd_inputs_are_refused_by_name(case):
    name, call, match = _rd_calls()[case]
    with pytest.raises((ValueError, TypeError), match=match):
        call()


@pytest.mark.parametrize("kw", [{"momentum": math.nan}, {"weight_decay": math.inf}])
def test_sam_refuses_non_finite_base_settings(kw):
    with pytest.raises(ValueError, match=f"{next(iter(kw))}=(nan|inf): must be a finite number"):
        SAM(nn.Linear(2, 2).parameters(), torch.optim.SGD, rho=0.1, lr=0.1, **kw)


@pytest.mark.parametrize("rho,match", [(math.nan, "finite"), (-1.0, ">= 0")])
def test_perturbation_refuses_a_bad_rho(rho, match):
    with pytest.raises(ValueError, match=match):
        perturbation([torch.ones(2)], [torch.ones(2)], rho)


@pytest.mark.parametrize("kw,match", [
    ({"seed": -1}, "seed"), ({"seed": "a"}, "seed"), ({"dataset": "bogus"}, "dataset='bogus'"),
    ({"data_root": 3}, "data_root"),
    ({"method": "sgd-sam", "rho": 0.5, "batch_size": 5000}, "batch_size=5000"),
])
def test_fullbatchconfig_refuses_further_bad_fields(kw, match):
    with pytest.raises(ValueError, match=match):
        FullBatchConfig(**kw)
