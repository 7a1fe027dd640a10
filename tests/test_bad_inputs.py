"""Invalid inputs to every public entry point: each must fail at once with an error that
names the argument (and, where it helps, what to pass instead). None may hang or be
accepted silently. A SIGALRM guard turns a hang into a failure.
"""

from __future__ import annotations

import math
import re
import signal

import numpy as np
import pytest
import torch
from torch import nn

from sam_hallucination.optim import SAM
from sam_hallucination.rd import dynamics as D
from sam_hallucination.rd.landscapes import DOUBLE_WELL, RING
from sam_hallucination.runs.cli import main
from sam_hallucination.runs.config import RunConfig
from sam_hallucination.runs.sweeps import Sweep, run_sweep

torch.set_num_threads(1)
HANG_S = 30


@pytest.fixture(autouse=True)
def no_hang():
    def alarm(*_):
        raise TimeoutError(f"hung for {HANG_S} s")

    old = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(HANG_S)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, old)


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(3, 2)


# ----------------------------------------------------------------------------- SAM
@pytest.mark.parametrize("kw,exc,match", [
    (dict(lr=math.nan), ValueError, r"lr must be a finite real number"),
    (dict(lr=math.inf), ValueError, r"lr must be a finite"),
    (dict(lr=-0.1), ValueError, r"lr must be .* >= 0"),
    (dict(lr=0.1, adaptive="yes"), TypeError, r"adaptive must be True or False"),
    (dict(lr=0.1, adaptive=1), TypeError, r"adaptive must be True or False"),
    (dict(lr=0.1, adaptive=None), TypeError, r"adaptive must be True or False"),
    (dict(lr=0.1, rho=math.nan), ValueError, r"rho must be finite"),
    (dict(lr=0.1, variant="asam"), ValueError, r"variant must be one of"),
    (dict(lr=0.1, rho_schedule="cosine"), ValueError, r"rho_schedule must be one of"),
    (dict(lr=0.1, total_steps=0), ValueError, r"total_steps must be a positive int"),
    (dict(lr=0.1, switch_at=1.5, total_steps=10), ValueError, r"switch_at as a fraction"),
])
def test_sam_constructor(kw, exc, match):
    with pytest.raises(exc, match=match):
        SAM(model().parameters(), torch.optim.SGD, **kw)


@pytest.mark.parametrize("group,match", [
    ({"adaptive": "False"}, r"adaptive \(param group 0\) must be True or False"),
    ({"lr": math.nan}, r"lr \(param group 0\) must be a finite"),
    ({"rho": -1.0}, r"rho \(param group 0\) must be >= 0"),
])
def test_sam_param_group(group, match):
    m = model()
    with pytest.raises((TypeError, ValueError), match=match):
        SAM([{"params": m.parameters(), **group}], torch.optim.SGD, lr=0.1)


def test_sam_add_param_group_checks_adaptive():
    opt = SAM(model().parameters(), torch.optim.SGD, lr=0.1)
    with pytest.raises(TypeError, match=r"adaptive \(new param group\)"):
        opt.add_param_group({"params": [nn.Parameter(torch.ones(2))], "adaptive": "no"})


def good_state() -> tuple[SAM, dict]:
    opt = SAM(model().parameters(), torch.optim.SGD, lr=0.1, total_steps=10,
              rho_schedule="linear")
    return opt, opt.state_dict()


@pytest.mark.parametrize("key,value,match", [
    ("variant", "asam", r"\['variant'\] must be one of"),
    ("rho_schedule", "cosine", r"\['rho_schedule'\] must be one of"),
    ("step_count", -1, r"\['step_count'\] must be an int >= 0"),
    ("step_count", 1.5, r"\['step_count'\] must be an int >= 0"),
    ("switch_step", -3, r"\['switch_step'\] must be an int >= 0"),
    ("total_steps", 0, r"\['total_steps'\] must be None or an int >= 1"),
    ("total_steps", None, r"rho_schedule 'linear' needs total_steps"),
])
def test_sam_load_state_dict(key, value, match):
    opt, sd = good_state()
    sd["sam"][key] = value
    with pytest.raises(ValueError, match=match):
        opt.load_state_dict(sd)
    assert opt.step_count == 0  # nothing half-loaded


def test_sam_load_state_dict_missing_key():
    opt, sd = good_state()
    del sd["sam"]["variant"]
    with pytest.raises(ValueError, match=r"state_dict\['sam'\] must hold"):
        opt.load_state_dict(sd)


# ----------------------------------------------------------------------------- RunConfig
@pytest.mark.parametrize("field", ["nesterov", "adaptive", "amp", "probe"])
@pytest.mark.parametrize("value", ["False", "true", 0, None])
def test_runconfig_bool_fields(field, value):
    with pytest.raises(ValueError, match=rf"RunConfig\.{field}=.*must be True or False"):
        RunConfig(**{field: value})


@pytest.mark.parametrize("value", ["yes", 1])
def test_runconfig_augment(value):
    with pytest.raises(ValueError, match=r"RunConfig\.augment=.*True, False or None"):
        RunConfig(augment=value)


# ----------------------------------------------------------------------------- dynamics engine
@pytest.mark.parametrize("kw,match", [
    (dict(check_every=0), r"check_every must be an int >= 1"),  # hung before
    (dict(check_every=-5), r"check_every must be an int >= 1"),
    (dict(check_every=2.5), r"check_every must be an int >= 1"),
    (dict(record_every=0), r"record_every must be an int >= 1"),
    (dict(tol=math.nan), r"tol must be a finite real number >= 0"),
    (dict(tol=-1.0), r"tol must be a finite real number >= 0"),
    (dict(div_radius=0.0), r"div_radius must be a finite real number > 0"),
    (dict(seed=-1), r"seed must be an int >= 0"),
    (dict(steps=-1), r"steps must be an int >= 0"),
    (dict(eta=math.nan), r"eta must be finite and > 0"),
    (dict(rho=-1.0), r"rho must be finite and > 0"),
    (dict(noise=-0.1), r"noise must be finite and >= 0"),
])
def test_iterate(kw, match):
    with pytest.raises(ValueError, match=match):
        D.iterate(RING, [[0.3, 0.2]], **({"steps": 10} | kw))


def test_iterate_bad_starts():
    with pytest.raises(ValueError, match=r"x0 must have shape \(B, 2\)"):
        D.iterate(RING, [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=r"x0 must be finite"):
        D.iterate(RING, [[math.nan, 0.0]])


@pytest.mark.parametrize("kw,match", [
    (dict(tol_step=math.nan), "tol_step"), (dict(tol_grad=-1.0), "tol_grad"),
    (dict(tol_curv=math.inf), "tol_curv"), (dict(div_radius=-1.0), "div_radius"),
])
def test_classify_tolerances(kw, match):
    with pytest.raises(ValueError, match=match):
        D.classify(RING, torch.zeros(1, 2, dtype=torch.float64), **kw)


# ----------------------------------------------------------------------------- fixed points
@pytest.mark.parametrize("kw,match", [
    (dict(tol=math.nan), r"tol must be a finite"), (dict(tol=-1e-12), r"tol must be"),
    (dict(grad_tol=math.nan), r"grad_tol must be"), (dict(max_iter=0), r"max_iter must be"),
])
def test_solve_hallucinated_tolerances(kw, match):
    with pytest.raises(ValueError, match=match):
        D.solve_hallucinated(RING, [0.3, 0.25], 1.5, **kw)


@pytest.mark.parametrize("call", [
    lambda x: D.solve_hallucinated(RING, x, 1.5),
    lambda x: D.refine_critical_point(RING, x),
    lambda x: D.sam_map_generator(RING, x, 1.5),
    lambda x: D.sam_map_jacobian_formula(RING, x, 1.5, 0.1),
])
def test_one_point_functions_refuse_a_batch(call):
    with pytest.raises(ValueError, match=r"must be ONE point of shape \(2,\), got a batch of 2"):
        call([[0.3, 0.25], [0.1, 0.4]])


def test_measured_rate_refuses_a_batch_and_bad_sizes():
    with pytest.raises(ValueError, match=r"x_star must be ONE point"):
        D.measured_rate(RING, [[0.5, 0.0], [0.0, 0.5]], 1.5, 0.1)
    with pytest.raises(ValueError, match=r"offset must be"):
        D.measured_rate(RING, [0.5, 0.0], 1.5, 0.1, offset=math.nan)
    with pytest.raises(ValueError, match=r"steps must be an int >= 1"):
        D.measured_rate(RING, [0.5, 0.0], 1.5, 0.1, steps=0)


def test_refine_critical_point_tolerances():
    with pytest.raises(ValueError, match="tol must be"):
        D.refine_critical_point(RING, [0.9, 0.1], tol=math.nan)
    with pytest.raises(ValueError, match="max_iter must be"):
        D.refine_critical_point(RING, [0.9, 0.1], max_iter=0)


@pytest.mark.parametrize("kw,match", [
    (dict(d_rho=0.0), r"d_rho must be a finite real number > 0"),  # hung before
    (dict(d_rho=math.nan), r"d_rho must be"),
    (dict(d_rho=-0.01), r"d_rho must be"),
    (dict(refine_tol=0.0), r"refine_tol must be a finite real number > 0"),  # hung before
    (dict(max_jump=0.0), r"max_jump must be"),
    (dict(rho_min=2.0, rho_max=1.0), r"rho_max=1.0 must be > rho_min=2.0"),
    (dict(eta=math.nan), r"eta must be finite and > 0"),
])
def test_continue_branch(kw, match):
    with pytest.raises(ValueError, match=match):
        D.continue_branch(RING, [0.3, 0.25], 1.5, **kw)


@pytest.mark.parametrize("A,match", [
    (torch.full((2, 2), math.nan, dtype=torch.float64), r"A must be a finite square matrix"),
    (torch.tensor([[1.0, math.inf], [0.0, 1.0]]), r"A must be a finite square matrix"),
    (torch.ones(2, 3), r"A must be a finite square matrix"),
])
def test_attraction_eta_max(A, match):
    with pytest.raises(ValueError, match=match):
        D.attraction_eta_max(A)


def test_attraction_eta_max_zero_tol():
    with pytest.raises(ValueError, match="zero_tol"):
        D.attraction_eta_max(torch.eye(2, dtype=torch.float64), zero_tol=math.nan)


# ----------------------------------------------------------------------------- phases
RHOS, ETAS = np.array([1.5]), np.array([0.1])


@pytest.mark.parametrize("kw,match", [
    (dict(n_starts=0), r"n_starts must be an int >= 1"),  # NaN fractions before
    (dict(steps=-1), r"steps must be an int >= 0"),
    (dict(rhos=np.array([])), r"rhos must be a non-empty 1-D array"),
    (dict(etas=np.array([0.1, math.nan])), r"etas must be a non-empty 1-D array"),
    (dict(etas=np.array([[0.1]])), r"etas must be a non-empty 1-D array"),
    (dict(start_radius=0.0), r"start_radius must be"),
    (dict(near_width=0.7), r"near_width must lie in \(0, 0.5\)"),
])
def test_phase_diagram(kw, match):
    args = {"rhos": RHOS, "etas": ETAS, "n_starts": 2, "steps": 5} | kw
    with pytest.raises(ValueError, match=match):
        D.phase_diagram(RING, args.pop("rhos"), args.pop("etas"), **args)


@pytest.mark.parametrize("kw,match", [
    (dict(n_points=0), r"n_points must be an int >= 1"),  # NaN means before
    (dict(steps=100, burn_in=100), r"burn_in=100 must be < steps=100"),  # NaN means before
    (dict(burn_in=-1), r"burn_in must be an int >= 0"),
    (dict(sigmas=[]), r"sigmas must be a non-empty 1-D array"),
    (dict(sigmas=[-0.1]), r"sigmas must be .* >= 0"),
    (dict(escape_radius=0.0), r"escape_radius must be"),
])
def test_noise_study(kw, match):
    args = {"rho": 1.5, "eta": 0.1, "sigmas": [0.1], "n_points": 4, "steps": 50,
            "burn_in": 10} | kw
    with pytest.raises(ValueError, match=match):
        D.noise_study(RING, 0.5, **args)


# ----------------------------------------------------------------------------- sweeps and CLI
def test_run_sweep_seeds_outside_the_sweep():
    sw = Sweep("t", "one", [RunConfig(dataset="synthetic", model="mlp", batch_size=32)])
    with pytest.raises(ValueError, match=r"seeds \[7\] are not in sweep 't'"):
        run_sweep(sw, seeds=[7], dry_run=True)


@pytest.mark.parametrize("argv,match", [
    (["smoke", "--seeds", "7", "--dry-run"], r"--seeds '7': sweep smoke has seeds \[0\]"),
    (["smoke", "--seeds", ",", "--dry-run"], r"--seeds ','"),
    (["smoke", "--seeds", "a", "--dry-run"], r"--seeds must be comma-separated integers"),
    (["smoke", "--threads", "0", "--dry-run"], r"--threads must be >= 1"),
    (["smoke", "--threads", "-2", "--dry-run"], r"--threads must be >= 1"),
    (["smoke", "--max-runs", "-1", "--dry-run"], r"--max-runs must be >= 0"),
    (["smoke", "--time-budget", "nan", "--dry-run"], r"--time-budget must be > 0"),
    (["smoke", "--time-budget", "0", "--dry-run"], r"--time-budget must be > 0"),
    (["nosuch", "--dry-run"], r"unknown sweep 'nosuch'"),
])
def test_cli(argv, match, capsys):
    threads = torch.get_num_threads()
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert re.search(match, capsys.readouterr().err)
    assert torch.get_num_threads() == threads


# ----------------------------------------------------------------------------- the solver's rule
def test_a_true_critical_point_is_not_a_hallucinated_one():
    """G(x) ≈ 0 at a point whose own gradient is ≈ 0: a minimizer, never "converged".

    On the double well with ρ = 2, x = −1 + ε has u = +1 and x⁺ = 1 + ε, so
    ‖G(x)‖ ≈ 8ε ≤ tol: only the rule ‖∇f(x)‖ > grad_tol refuses it.
    """
    x0 = [-1.0 + 2.0**-45]
    s = D.solve_hallucinated(DOUBLE_WELL, x0, 2.0)
    assert s.residual <= 1e-12 and s.grad_norm <= 1e-8  # G vanishes there...
    assert not s.converged and "critical point of f" in s.message  # ...but it is no hallucination
    with pytest.raises(D.HallucinationSolveError, match="critical point"):
        D.solve_hallucinated(DOUBLE_WELL, x0, 2.0, strict=True)
    real = D.solve_hallucinated(RING, [0.3, 0.25], 1.5)  # the rule does not refuse a real one
    assert real.converged and real.grad_norm > 1e-8
