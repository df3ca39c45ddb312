"""A small bounded Levenberg-Marquardt solver for the charge-model inversion's tiny fits.

The inversion fits 3-20 parameters to 5-40 residuals about 55 times per particle;
``scipy.optimize.least_squares`` (method ``trf``) spends most of such a fit in its own
per-iteration Python code. This solver does the same job in a few numpy operations per
iteration; :func:`qrspec.charging.inverse._lsq` falls back to scipy when it does not converge.

Method: Levenberg-Marquardt in the scaled variables ``x / x_scale`` with an active set and
projected steps. A parameter on a bound whose gradient pushes it outwards is held there (its
column is left out of the step); every trial point is projected onto the box. The damped
step of the free columns comes from one SVD of the Jacobian per iteration (every damping
then costs a matrix-vector product); the damping starts near Gauss-Newton (1e-9 of the
largest diagonal of J^T J) and follows Nielsen's rule (gain ratio of the actual to the
predicted reduction of the projected step; decrease at most tenfold per step). Unlike
``trf``, whose iterates stay strictly inside the box, a parameter can sit exactly on its
bound (n = 0 is common).

Stopping rules are scipy's with the same tolerances: ``ftol`` (an accepted step with gain
ratio > 0.25 reduced the cost by less than ``ftol`` times the cost), ``xtol`` (a step shorter
than ``xtol (xtol + |x|)`` in scaled variables) and ``gtol`` (the sup norm of the scaled
projected gradient below ``gtol``), plus one more: the Gauss-Newton decrement (the largest
reduction of the linearised cost over all steps of the free columns, ``|U^T r|^2 / 2``) below
``ftol / 100`` times the cost. It ends the fit without the trial evaluations that scipy spends
on rejected steps at the optimum, and is a hundred times stricter than ``ftol`` (near the
optimum the decrement equals the next step's gain to first order).

Not converged (the caller falls back to scipy): non-finite values, the evaluation budget
spent, a step that collapsed below ``xtol`` while the decrement stays large (a kink the
Jacobian does not describe), and a stationary point on a bound where the free columns of the
Jacobian are dependent (smallest singular value <= 1e-8 of the largest). The last is a face
of the box on which a parameter stops mattering (capped model at gamma = 0: n drops out of
the model); a projected step can land on it in one go, where trf's strictly interior path
does not.
"""

from __future__ import annotations

import math

import numpy as np


def lm_bounded(fun, jac, x0, lo, hi, x_scale, *, ftol=1e-12, xtol=1e-12, gtol=1e-12,
               max_nfev=2000):
    """Minimise ``0.5 |fun(x)|^2`` subject to ``lo <= x <= hi``.

    Parameters
    ----------
    fun, jac : callable
        Residuals (m,) and their Jacobian (m, p) at a parameter vector (p,).
    x0, lo, hi, x_scale : ndarray
        Start (projected onto the box), bounds (may be infinite) and characteristic scales.
    ftol, xtol, gtol : float
        Stopping tolerances (module docstring).
    max_nfev : int
        Largest number of residual evaluations.

    Returns
    -------
    x : ndarray
        The last accepted point.
    converged : bool
        Whether a stopping rule was met (False: evaluation budget spent or non-finite values).
    """
    x = np.minimum(np.maximum(np.asarray(x0, float), lo), hi)
    d = np.asarray(x_scale, float)
    r = fun(x)
    if not np.isfinite(r).all():
        return x, False
    cost = 0.5 * (r @ r)
    nfev = 1
    lam = None
    nu = 2.0
    done = False  # a step-size rule was met: check the point, then stop
    while True:
        J = jac(x)
        if not np.isfinite(J).all():
            return x, False
        g = J.T @ r
        free = ~(((x <= lo) & (g > 0)) | ((x >= hi) & (g < 0)))
        if not free.any():  # every parameter held on a bound: a vertex of the box
            return x, True
        all_free = free.all()  # the usual case: no copies by a mask
        d_free = d if all_free else d[free]
        gs = (g if all_free else g[free]) * d_free
        Js = (J if all_free else J[:, free]) * d_free
        u, s, vt = np.linalg.svd(Js, full_matrices=False)
        ur = u.T @ r
        if done or np.abs(gs).max() < gtol or 0.5 * (ur @ ur) < 1e-2 * ftol * cost:
            # a point on a bound where the free columns are (nearly) dependent is a face on
            # which some parameter stopped mattering (capped model at gamma = 0: n drops out),
            # a trap that trf's strictly interior path avoids: not trusted, the caller's
            # fallback decides
            on_bound = np.any((x <= lo) | (x >= hi))
            return x, not (on_bound and (s.size < gs.size or s[-1] <= 1e-8 * s[0]))
        if lam is None:  # nearly Gauss-Newton: the inversion's problems are mostly benign
            lam = 1e-9 * float(np.max(np.sum(Js * Js, axis=0)))
        xs = x / d
        x_norm = math.sqrt(xs.dot(xs))  # np.linalg.norm's arithmetic without its dispatch
        sur, ss, v = s * ur, s * s, vt.T
        while True:
            step = -(v @ (sur / (ss + lam))) * d_free
            if not all_free:
                step_free, step = step, np.zeros_like(x)
                step[free] = step_free
            x_new = np.minimum(np.maximum(x + step, lo), hi)  # np.clip without its wrapper
            dx = x_new - x
            dxs = dx / d
            dx_norm = math.sqrt(dxs.dot(dxs))
            r_lin = r + J @ dx
            predicted = cost - 0.5 * (r_lin @ r_lin)
            r_new = fun(x_new)
            nfev += 1
            cost_new = 0.5 * (r_new @ r_new) if np.isfinite(r_new).all() else np.inf
            actual = cost - cost_new
            rho = actual / predicted if predicted > 0 else -1.0
            if rho > 1e-4:
                break
            if dx_norm < xtol * (xtol + x_norm):
                # the step collapsed while the decrement says the cost can still drop: the
                # Jacobian does not describe the cost here (a kink, e.g. the capped model at
                # n = 1): not converged, the caller's fallback decides
                return x, False
            if nfev >= max_nfev:
                return x, False
            lam *= nu
            nu *= 2.0
        x, r = x_new, r_new
        old_cost, cost = cost, cost_new
        if (actual < ftol * old_cost and rho > 0.25) or dx_norm < xtol * (xtol + x_norm):
            done = True
            continue
        if nfev >= max_nfev:
            return x, False
        lam *= max(0.1, 1.0 - (2.0 * rho - 1.0) ** 3)
        nu = 2.0
