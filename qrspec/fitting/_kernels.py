"""Numba kernels of the fitting layer: arrays in, arrays out, no checks.

A lifetime fit runs whole in :func:`fit_rows` (start-value scaling, the projected
Levenberg-Marquardt iteration, the objective's Hessian at the optimum, the fit diagnostics), for
one histogram or a batch of them, with no Python between iterations; the covariance (the
Hessian's inverse) and the checks of the optimum are the caller's, in NumPy.

Compilation cost (a cold numba cache: every new environment, and every worker process that
starts before the cache is written, pays it once): ``fit_rows`` is the entry point the fits
compile, with one signature for every model (the model is data: ``spec``), and plain loops
throughout (array slice assignment ``a[:] = b`` costs over a second of compilation by itself);
``row_start`` (the one-histogram checks and start statistics of ``fit_decay``) adds 0.17 s
(after another compilation in the same process, 3 runs), ``rows_start`` (the same per row for
``fit_decays``) 0.13 s at the first ``fit_decays`` call (3 fresh-cache runs, 2026-12-06).
It is 3.0-3.4 s of CPU in a fresh process (``scripts/bench_fit.py --compile``, 2026-12-06, load
3-5), about twice the 1.5 s of the Python-driven fit it replaced; numba's own typing and
lowering (Python) take about two thirds of it, LLVM the rest. Inlining the helpers at the
numba-IR level (``inline="always"``) was measured slower to compile (4.1-4.4 s), and dropping
their CPython wrappers saved nothing measurable. Splitting the model and the objective into a
value pass and a derivative pass (derivatives only at accepted steps: 30 ms less fitting per
bench particle) made it 3.8 s against 3.0 s (median of 3 interleaved rounds, load 4-5).

A fit problem is described by arrays, built by :mod:`qrspec.fitting.lifetime`:

* ``spec`` (int64): the ``S_*`` entries below (model kind, components, parameter indices of one
  detector's local parameter vector, objective, iteration limit, start scaling);
* ``fpar`` (float64): the ``F_*`` entries (bin width, cascade Poisson probabilities, model floor,
  convergence tolerance);
* ``irf`` ``(n_det, period_bins)``, unit sum per row (a delta at the first fitted bin for a tail
  fit); ``fixed_bg`` ``(n_det, n_data)``; ``pmap`` ``(n_det, n_local)``: global index of each
  detector's local parameter (the lifetimes are shared in a global fit).

Local parameters of one detector: ``log tau_k`` (k < n_tau), amplitudes (multi-exponential:
``A_k`` photons per period; cascade: total ``A`` and ``rho = eta_XX / eta_X``), background
(counts/bin), [shift (bins)], [scatter (photons)].
"""

from __future__ import annotations

import math

import numba
import numpy as np

# spec entries
S_KIND = 0  # 0 multi-exponential, 1 X/XX cascade
S_NTAU = 1  # lifetimes per detector
S_RECONV = 2  # 1: reconvolve with a shifted IRF, 0: tail fit (no shift, no scatter)
S_IBG = 3  # local index of the background
S_ISHIFT = 4  # local index of the IRF shift, -1 when not fitted
S_ISCAT = 5  # local index of the scatter amplitude, -1 when not fitted
S_NDATA = 6  # histogram bins per detector (<= period_bins)
S_OBJECTIVE = 7  # 0 Poisson deviance, 1 Neyman chi2, 2 Pearson chi2
S_MAXITER = 8  # iteration limit of the optimiser
S_SCALE_STARTS = 9  # 1: scale the start amplitudes to the counts in the fit range
S_SIZE = 10
# fpar entries
F_BIN = 0  # bin width (ns)
F_P1 = 1  # cascade: P(N = 1)
F_P2 = 2  # cascade: P(N >= 2)
F_TINY = 3  # floor of the model (counts/bin) inside logs and weights
F_TOL = 4  # convergence tolerance on the objective
F_SIZE = 5
# fit_rows stats columns
R_F = 0  # objective at the optimum
R_NITER = 1  # optimiser iterations
R_CONVERGED = 2  # 1.0 when the optimiser converged
R_DEVIANCE = 3  # Poisson deviance over the fitted bins
R_CHI2 = 4  # Pearson chi2 over the fitted bins
R_SIZE = 5

_OPTS = dict(cache=True, nogil=True, error_model="numpy", no_cfunc_wrapper=True)


@numba.njit(**_OPTS)
def exp_conv_periodic(irf, q, y, dy, derivative):
    """Circular convolution of ``irf`` with the bin-integrated periodic exponential; d/dlog tau.

    Fills ``y`` (and ``dy`` when ``derivative``; ``y.size == dy.size == irf.size``). The kernel
    is ``h_k = (1 - q) q**k / (1 - q**n)`` for k = 0..n-1 with ``q = exp(-bin/tau)``; it sums to
    1 over the period, so ``y`` sums to ``irf.sum()``. Solved by the periodic recursion
    ``y_i = q y_{i-1} + (1 - q) irf_i`` (O(n), no FFT); ``dy`` is dy/d(ln tau)
    (:func:`exp_conv_dlogtau`).
    """
    n = irf.size
    qn = q**n
    # y_{n-1} = (1-q)/(1-q^n) * sum_k q^k irf_{n-1-k}
    acc = 0.0
    qk = 1.0
    for k in range(n):
        acc += qk * irf[n - 1 - k]
        qk *= q
        if qk < 1e-300:
            break
    prev = (1.0 - q) * acc / (1.0 - qn)
    for i in range(n):
        prev = q * prev + (1.0 - q) * irf[i]
        y[i] = prev
    if derivative:
        exp_conv_dlogtau(irf, q, y, dy)


@numba.njit(**_OPTS)
def exp_conv_dlogtau(irf, q, y, dy):
    """dy/d(ln tau) of ``y`` = :func:`exp_conv_periodic` ``(irf, q)`` (given), into ``dy``.

    The differentiated recursion ``z_i = q z_{i-1} + dq (y_{i-1} - irf_i)``, ``dq = -q ln q``,
    solved periodically like ``y``.
    """
    n = irf.size
    qn = q**n
    # u_i = dq (y_{i-1} - irf_i), periodic solution of z_i = q z_{i-1} + u_i
    dq = -q * math.log(q)
    acc = 0.0
    qk = 1.0
    for k in range(n):
        j = n - 1 - k
        yprev = y[j - 1] if j > 0 else y[n - 1]
        acc += qk * dq * (yprev - irf[j])
        qk *= q
        if qk < 1e-300:
            break
    prev = acc / (1.0 - qn)
    for i in range(n):
        yprev = y[i - 1] if i > 0 else y[n - 1]
        prev = q * prev + dq * (yprev - irf[i])
        dy[i] = prev


@numba.njit(**_OPTS)
def shift_periodic(src, delta, out, dout, clip):
    """Shift ``src`` later by ``delta`` bins (periodic, Catmull-Rom cubic) into ``out``.

    Output bin i takes the value at source position ``i - delta`` (``out.size <= src.size``);
    ``dout`` is d/d(delta). The cubic convolution is a partition of unity (sums are preserved)
    and C1 in ``delta``, so the objective has no kinks at whole-bin shifts (linear interpolation
    has them). ``clip``: the cubic's undershoot next to sharp edges is set to 0 (with its
    derivative) so that a model built from it stays positive.
    """
    n = src.size
    s = int(math.floor(delta))
    u = delta - s  # position i - s - u: between j0 = i - s and j0 - 1
    u2 = u * u
    u3 = u2 * u
    w0 = 0.5 * (-u3 + 2.0 * u2 - u)  # j0 + 1
    w1 = 0.5 * (3.0 * u3 - 5.0 * u2 + 2.0)  # j0
    w2 = 0.5 * (-3.0 * u3 + 4.0 * u2 + u)  # j0 - 1
    w3 = 0.5 * (u3 - u2)  # j0 - 2
    d0 = 0.5 * (-3.0 * u2 + 4.0 * u - 1.0)
    d1 = 0.5 * (9.0 * u2 - 10.0 * u)
    d2 = 0.5 * (-9.0 * u2 + 8.0 * u + 1.0)
    d3 = 0.5 * (3.0 * u2 - 2.0 * u)
    j0 = (-s) % n  # source index j0 of output bin 0
    jp = j0 + 1 if j0 + 1 < n else 0
    jc = j0
    jm = j0 - 1 if j0 > 0 else n - 1
    jmm = jm - 1 if jm > 0 else n - 1
    for i in range(out.size):
        a = src[jp]
        b = src[jc]
        c = src[jm]
        e = src[jmm]
        v = w0 * a + w1 * b + w2 * c + w3 * e
        if clip and v < 0.0:
            out[i] = 0.0
            dout[i] = 0.0
        else:
            out[i] = v
            dout[i] = d0 * a + d1 * b + d2 * c + d3 * e
        jmm = jm
        jm = jc
        jc = jp
        jp += 1
        if jp == n:
            jp = 0


@numba.njit(**_OPTS)
def model_jacobian(theta, irf, fixed_bg, pmap, spec, fpar, m, jac, work):
    """Model counts ``m`` (n_det * n_data) and Jacobian ``jac`` (n_det * n_data, n_params).

    :func:`model_values` then :func:`model_derivatives` (the fit calls the second only for
    accepted steps). The IRF is shifted before the convolution: by ``delta + 1/2`` bin for the
    exponentials (midpoint convention: IRF bin j is a point mass at its centre; the plain
    discrete convolution is half a bin early) and by ``delta`` for the scatter term (the IRF
    histogram itself). Without reconvolution (tail fit) the IRF is a delta at the first fitted
    bin, the bin-integrated exponential starting there is exact and nothing is shifted. ``work``
    is scratch of shape ``(n_det, 4 + 3 n_tau, period_bins)``.

    Multi-exponential: ``m = sum_k A_k y_k + b + s IRF + fixed``. Cascade (see
    :mod:`qrspec.fitting.models`): ``A_k = A w_k(tau_X, tau_XX, rho)`` with the photon fractions
    ``w_X = (P1 + P2 u) / Z``, ``w_XX = P2 (rho - v) / Z``, ``u = tau_X / D``,
    ``v = tau_XX / D``, ``D = tau_X - tau_XX``, ``Z = P1 + P2 (1 + rho)``.
    """
    model_values(theta, irf, fixed_bg, pmap, spec, fpar, m, work)
    model_derivatives(theta, irf, pmap, spec, fpar, jac, work)


@numba.njit(**_OPTS)
def component_amplitudes(theta, pmap, d, spec, fpar, coef, dtau, wts, drho):
    """Photons of each exponential of detector ``d`` into ``coef`` (cascade: and derivatives).

    Multi-exponential: the amplitudes. Cascade: ``coef = A w``, the fractions ``wts``, ``dtau``
    (d A_j / d log tau_k beyond the shape change, ``[k, j]``) and ``drho`` (d A_j / d rho).
    """
    nt = spec[S_NTAU]
    if spec[S_KIND] == 0:
        for k in range(nt):
            coef[k] = theta[pmap[d, nt + k]]
        return
    tx = math.exp(theta[pmap[d, 0]])
    txx = math.exp(theta[pmap[d, 1]])
    rho = theta[pmap[d, 3]]
    amp = theta[pmap[d, 2]]
    p1 = fpar[F_P1]
    p2 = fpar[F_P2]
    dd = tx - txx
    z = p1 + p2 * (1.0 + rho)
    u = tx / dd
    v = txx / dd
    wts[0] = (p1 + p2 * u) / z
    wts[1] = p2 * (rho - v) / z
    # du/dlog tau_x = -tx txx / D^2, du/dlog tau_xx = tx txx / D^2; w_X + w_XX = 1
    du0 = -txx / dd**2 * tx
    du1 = tx / dd**2 * txx
    dtau[0, 0] = amp * (p2 * du0 / z)
    dtau[0, 1] = -dtau[0, 0]
    dtau[1, 0] = amp * (p2 * du1 / z)
    dtau[1, 1] = -dtau[1, 0]
    drho[0] = amp * (-(p1 + p2 * u) * p2 / z**2)
    drho[1] = amp * (p2 / z - p2 * (rho - v) * p2 / z**2)
    for k in range(2):
        coef[k] = amp * wts[k]


@numba.njit(**_OPTS)
def model_values(theta, irf, fixed_bg, pmap, spec, fpar, m, work):
    """Model counts ``m`` (n_det * n_data) at ``theta`` (:func:`model_jacobian`).

    Leaves in ``work[d]`` what :func:`model_derivatives` needs at the same ``theta``: rows 0, 1
    the IRF shifted by ``delta + 1/2`` and its derivative; 2, 3: by ``delta``; ``4 + k``: the
    convolved exponentials ``y_k``.
    """
    nt = spec[S_NTAU]
    reconv = spec[S_RECONV] != 0
    i_bg = spec[S_IBG]
    i_shift = spec[S_ISHIFT]
    i_scat = spec[S_ISCAT]
    nd = spec[S_NDATA]
    bin_ns = fpar[F_BIN]
    coef = np.empty(nt)
    dtau = np.empty((2, 2))
    wts = np.empty(2)
    drho = np.empty(2)
    n_shifted = (2 if i_scat >= 0 else 1) if reconv else 0
    for d in range(irf.shape[0]):
        off = d * nd
        wk = work[d]
        delta = theta[pmap[d, i_shift]] if i_shift >= 0 else 0.0
        for js in range(n_shifted):
            shift_periodic(irf[d], delta + 0.5 if js == 0 else delta, wk[2 * js],
                           wk[2 * js + 1], True)
        for k in range(nt):
            q = math.exp(-bin_ns / math.exp(theta[pmap[d, k]]))
            exp_conv_periodic(irf[d] if not reconv else wk[0], q, wk[4 + k], wk[4 + nt + k],
                              False)
        component_amplitudes(theta, pmap, d, spec, fpar, coef, dtau, wts, drho)
        bg = theta[pmap[d, i_bg]]
        scat = theta[pmap[d, i_scat]] if i_scat >= 0 else 0.0
        for i in range(nd):
            v_i = bg + fixed_bg[d, i]
            for k in range(nt):
                v_i += coef[k] * wk[4 + k, i]
            if n_shifted == 2:
                v_i += scat * wk[2, i]
            m[off + i] = v_i


@numba.njit(**_OPTS)
def model_derivatives(theta, irf, pmap, spec, fpar, jac, work):
    """Jacobian ``jac`` at ``theta`` from the ``work`` :func:`model_values` left at ``theta``.

    Fills ``work[d]`` rows ``4 + nt + k`` (dy_k/dlog tau_k) and ``4 + 2 nt + k`` (dy_k/d delta).
    """
    kind = spec[S_KIND]
    nt = spec[S_NTAU]
    reconv = spec[S_RECONV] != 0
    i_bg = spec[S_IBG]
    i_shift = spec[S_ISHIFT]
    i_scat = spec[S_ISCAT]
    nd = spec[S_NDATA]
    bin_ns = fpar[F_BIN]
    p = theta.size
    coef = np.empty(nt)
    dtau = np.empty((2, 2))
    wts = np.empty(2)
    drho = np.empty(2)
    n_shifted = (2 if i_scat >= 0 else 1) if reconv else 0
    shifted = reconv and i_shift >= 0
    for d in range(irf.shape[0]):
        off = d * nd
        wk = work[d]
        for k in range(nt):
            q = math.exp(-bin_ns / math.exp(theta[pmap[d, k]]))
            exp_conv_dlogtau(irf[d] if not reconv else wk[0], q, wk[4 + k], wk[4 + nt + k])
            if shifted:
                exp_conv_periodic(wk[1], q, wk[4 + 2 * nt + k], wk[4 + nt + k], False)
        component_amplitudes(theta, pmap, d, spec, fpar, coef, dtau, wts, drho)
        scat = theta[pmap[d, i_scat]] if i_scat >= 0 else 0.0
        for i in range(nd):
            row = off + i
            for a in range(p):
                jac[row, a] = 0.0
            dm = 0.0
            for k in range(nt):
                jac[row, pmap[d, k]] = coef[k] * wk[4 + nt + k, i]
                if shifted:
                    dm += coef[k] * wk[4 + 2 * nt + k, i]
            if kind == 0:
                for k in range(nt):
                    jac[row, pmap[d, nt + k]] = wk[4 + k, i]
            else:
                y0 = wk[4, i]
                y1 = wk[5, i]
                jac[row, pmap[d, 0]] += dtau[0, 0] * y0 + dtau[0, 1] * y1
                jac[row, pmap[d, 1]] += dtau[1, 0] * y0 + dtau[1, 1] * y1
                jac[row, pmap[d, 2]] = wts[0] * y0 + wts[1] * y1
                jac[row, pmap[d, 3]] = drho[0] * y0 + drho[1] * y1
            if n_shifted == 2:
                jac[row, pmap[d, i_scat]] = wk[2, i]
                if shifted:
                    dm += scat * wk[3, i]
            jac[row, pmap[d, i_bg]] = 1.0
            if shifted:
                jac[row, pmap[d, i_shift]] = dm


@numba.njit(**_OPTS)
def objective_terms(m, jac, c, idx, kind, tiny, g, h):
    """Objective over the bins ``idx``; fills its gradient ``g`` and Fisher-type Hessian ``h``.

    :func:`objective_value` and :func:`objective_derivatives` (the fit calls the second only for
    accepted steps).
    """
    f = objective_value(m, c, idx, kind, tiny)
    objective_derivatives(m, jac, c, idx, kind, tiny, g, h)
    return f


@numba.njit(**_OPTS)
def objective_value(m, c, idx, kind, tiny):
    """Objective over the bins ``idx`` of the model ``m`` and the counts ``c``.

    kind 0: Poisson deviance 2 sum(m - c + c ln(c/m)); 1: Neyman chi2 sum (c - m)^2 / max(c, 1);
    2: Pearson chi2 sum (c - m)^2 / m (the model floored at ``tiny`` in logs and denominators).
    """
    f = 0.0
    for ii in range(idx.size):
        i = idx[ii]
        mi = m[i]
        ci = c[i]
        mm = mi if mi > tiny else tiny
        if kind == 0:
            f += mm - ci
            if ci > 0:
                f += ci * math.log(ci / mm)
        elif kind == 1:
            w = 1.0 / (ci if ci > 1.0 else 1.0)
            r = ci - mi
            f += w * r * r
        else:
            r = ci - mm
            f += r * r / mm
    if kind == 0:
        f *= 2.0
    return f


@numba.njit(**_OPTS)
def objective_derivatives(m, jac, c, idx, kind, tiny, g, h):
    """Gradient ``g`` and Fisher-type Hessian ``h`` of :func:`objective_value`.

    Poisson deviance with the Fisher curvature weights 1/m (observed weights c/m^2 were tried:
    more rejected steps), so that ``h / 2`` is the Fisher information; Neyman chi2 with the
    weights 1/max(c, 1); Pearson chi2 with 1/m.
    """
    p = jac.shape[1]
    for a in range(p):
        g[a] = 0.0
        for b in range(p):
            h[a, b] = 0.0
    for ii in range(idx.size):
        i = idx[ii]
        mi = m[i]
        ci = c[i]
        mm = mi if mi > tiny else tiny
        if kind == 0:
            gi = 1.0 - ci / mm
            wi = 1.0 / mm
        elif kind == 1:
            w = 1.0 / (ci if ci > 1.0 else 1.0)
            gi = -w * (ci - mi)
            wi = w
        else:
            gi = 0.5 * (mm * mm - ci * ci) / (mm * mm)
            wi = 1.0 / mm
        for a in range(p):
            ja = jac[i, a]
            if ja == 0.0:
                continue
            g[a] += gi * ja
            wja = wi * ja
            for b in range(a + 1):
                h[a, b] += wja * jac[i, b]
    for a in range(p):
        g[a] *= 2.0
        for b in range(a + 1):
            h[a, b] *= 2.0
            h[b, a] = h[a, b]


@numba.njit(**_OPTS)
def chol_solve(a, mask, lw, b, x):
    """Solve ``A x = b`` for the rows and columns of ``A`` where ``mask`` is 1 (Cholesky).

    The other entries of ``x`` are 0. ``lw`` is scratch of ``a``'s shape. False when the masked
    block is not positive definite to working precision (a pivot <= 0 or not finite).
    """
    n = b.size
    for i in range(n):
        for j in range(i + 1):
            if mask[i] == 0.0 or mask[j] == 0.0:
                lw[i, j] = 1.0 if i == j else 0.0
                continue
            acc = a[i, j]
            for k in range(j):
                acc -= lw[i, k] * lw[j, k]
            if i == j:
                if not acc > 0.0 or not math.isfinite(acc):
                    return False
                lw[i, i] = math.sqrt(acc)
            else:
                lw[i, j] = acc / lw[j, j]
    for i in range(n):
        acc = b[i] * mask[i]
        for k in range(i):
            acc -= lw[i, k] * x[k]
        x[i] = acc / lw[i, i]
    for i in range(n - 1, -1, -1):
        acc = x[i]
        for k in range(i + 1, n):
            acc -= lw[k, i] * x[k]
        x[i] = acc / lw[i, i]
    return True


@numba.njit(**_OPTS)
def row_start(c, i0, i1, a0, after_bins, low, bg, bin_ns, period):
    """The checks and start statistics of one histogram ``c`` (fit range ``c[i0:i1]``).

    Returns ``(ok, total, n_ph, n_nonzero, b0, tau_mean)``: ``ok`` 1.0 when no count is NaN or
    negative; ``total`` and ``n_ph`` the sums of all counts and of the fit range; ``n_nonzero``
    the non-zero counts in the fit range; the start background ``b0`` (``bg`` when it is not
    NaN, else the larger of the mean of ``low``, the lowest fifth of the fit range, and a tenth
    of the mean count) and the first-moment lifetime ``tau_mean`` of the counts above ``b0``
    from position ``a0`` of the fit range on (bin centres ``after_bins`` after the IRF
    centroid), clipped to ``[2 bin_ns, period / 2]``. Every sum is accumulated in order, as
    ``np.cumsum`` (the batch path's ``_row_sums``) does, starting from -0.0 (the neutral
    element: ``-0.0 + x`` is ``x`` for every x), so the numbers are its numbers.
    """
    ok = 1.0
    total = -0.0
    for i in range(c.size):
        x = c[i]
        if not x >= 0:  # NaN or negative
            ok = 0.0
        total += x
    n_ph = -0.0
    nz = 0
    for i in range(i0, i1):
        n_ph += c[i]
        if c[i] != 0:
            nz += 1
    if math.isnan(bg):
        low_sum = -0.0
        for i in range(low.size):
            low_sum += low[i]
        b0 = max(low_sum / low.size, 0.1 * n_ph / (i1 - i0))
    else:
        b0 = bg
    w_sum = -0.0
    num = -0.0
    for j in range(i1 - i0 - a0):
        w = c[i0 + a0 + j] - b0
        w = w if w >= 0.0 else 0.0
        w_sum += w
        num += w * after_bins[j]
    tau_mean = num / w_sum * bin_ns if w_sum > 0 else 10.0 * bin_ns
    tau_mean = min(max(tau_mean, 2.0 * bin_ns), 0.5 * period)
    return ok, total, n_ph, float(nz), b0, tau_mean


@numba.njit(**_OPTS)
def rows_start(c, i0, i1, a0, after_bins, low, bg, bin_ns, period, out):
    """:func:`row_start` of every row of ``c`` (n_rows, n_bins) into ``out`` (n_rows, 6).

    ``low`` (n_rows, n_low): row ``r`` is row_start's ``low`` of ``c[r]`` (ignored when ``bg``
    is not NaN). The columns of ``out`` are row_start's results in its order. The batch
    path of ``fit_decays`` calls it on row chunks instead of building (n_rows, n_bins)
    temporaries: the same numbers as ``fit_decay``'s one call per histogram.
    """
    for r in range(c.shape[0]):
        ok, total, n_ph, n_nonzero, b0, tau_mean = row_start(
            c[r], i0, i1, a0, after_bins, low[r], bg, bin_ns, period)
        out[r, 0] = ok
        out[r, 1] = total
        out[r, 2] = n_ph
        out[r, 3] = n_nonzero
        out[r, 4] = b0
        out[r, 5] = tau_mean


@numba.njit(**_OPTS)
def fit_rows(counts, starts, lo, hi, fixed, idx, irf, fixed_bg, pmap, spec, fpar,
             theta_out, h_out, m_out, resid_out, stats_out):
    """Fit each row of ``counts`` (n_rows, n_det * n_data) from its start vector.

    The optimiser is a projected Levenberg-Marquardt iteration: each step solves
    ``(H_ff + lam diag(H_ff)) step = -g_f`` over the free parameters (not fixed, not at a bound
    that the gradient pushes against), projects the step onto the bounds (cascade: also
    tau_XX <= 0.98 tau_X) and accepts it when the objective does not increase (then
    ``lam /= 10``, else ``lam *= 10``). Converged: the predicted decrement ``-g.step`` or the
    achieved decrease is below ``fpar[F_TOL]`` with little damping, no free parameter is left,
    or (at ``lam > 1e12``) the decrement is below 1e-4. With ``spec[S_SCALE_STARTS]`` the start
    amplitudes are first scaled so that the model matches the counts in the fit range (the
    background keeps its start value; single-detector problems).

    ``starts`` (n_rows, n_params); ``fixed`` is 1.0 for fixed parameters. Writes per row the
    optimum (``theta_out``), the objective's Hessian there (``h_out``: twice the Fisher
    information for the Poisson deviance), the model on every bin (``m_out``), the Pearson
    residuals ``(c - m) / sqrt(m)`` on the fitted bins (NaN elsewhere) and ``stats_out``
    (``R_*`` columns: objective, iterations, convergence, Poisson deviance
    ``2 sum(m - c + c ln(c/m))`` and Pearson chi2 ``sum (c - m)^2 / m`` over the fitted bins,
    the model floored at ``fpar[F_TINY]`` in logs and denominators). The objective is not
    finite (and the iteration count 0) when the start gives a non-finite objective.

    One function with one projection, one model evaluation and one objective call (each pass
    of the loop evaluates a candidate: the start to scale, the start, then each step): called
    functions are compiled again inside their callers, so this keeps the compilation of a
    cold cache short; the covariance and the checks of the optimum are the caller's (NumPy).
    A candidate costs the model values and the objective only; the Jacobian, gradient and
    Hessian are computed where a step is accepted (about half the steps of a bi-exponential
    tail fit are rejected). The arithmetic is the same as evaluating everything everywhere,
    so the iterates are bit-identical to it.

    Cycle exit: a fit can stall in a cycle (e.g. a bi-exponential whose two lifetimes merged:
    an accepted step too small to change any parameter lowers the damping, the next step is
    rejected and raises it again). The state of the iteration is the point and the damping
    (everything else is computed from the point), so when an accepted step that did not move
    the point leaves the damping where the previous such step left it, with no move in
    between, the iteration repeats itself until the iteration limit without converging; it
    stops there and reports the limit as the iteration count: the same result as iterating to
    the limit (23 such stalls in the 747 fits of 12 bench particles, 9 % of their
    iterations).
    """
    n_total = counts.shape[1]
    p = lo.size
    kind = spec[S_OBJECTIVE]
    mkind = spec[S_KIND]
    nt = spec[S_NTAU]
    i_bg = spec[S_IBG]
    i_scat = spec[S_ISCAT]
    max_iter = spec[S_MAXITER]
    tiny = fpar[F_TINY]
    tol = fpar[F_TOL]
    work = np.empty((irf.shape[0], 4 + 3 * nt, irf.shape[1]))
    m2 = np.empty(n_total)
    jac = np.empty((n_total, p))
    mat = np.empty((p, p))
    lw = np.empty((p, p))
    g = np.empty(p)
    new = np.empty(p)
    span = np.empty(p)
    mask = np.empty(p)
    rhs = np.empty(p)
    step = np.empty(p)
    for a in range(p):
        s = hi[a] - lo[a]
        span[a] = s if math.isfinite(s) else 1.0
    for r in range(counts.shape[0]):
        c = counts[r]
        theta = theta_out[r]
        h = h_out[r]
        m = m_out[r]
        for a in range(p):
            new[a] = starts[r, a]
        phase = 1  # 0: scale the start amplitudes, 1: evaluate the start, 2: evaluate a step
        b0 = new[i_bg]
        if spec[S_SCALE_STARTS] != 0:
            phase = 0
            new[i_bg] = 0.0
            if i_scat >= 0:
                new[i_scat] = 0.0
        f = math.inf
        lam = 1e-3
        ok = False
        n_iter = 0
        decrement = 0.0
        still_lam = -1.0  # damping after the last accepted step that did not move (-1: moved)
        while True:
            for a in range(p):  # project onto the bounds (NaN stays NaN)
                v = new[a]
                if v < lo[a]:
                    v = lo[a]
                if v > hi[a]:
                    v = hi[a]
                new[a] = v
            if mkind == 1 and new[1] > new[0] + math.log(0.98):
                new[1] = new[0] + math.log(0.98)
            model_values(new, irf, fixed_bg, pmap, spec, fpar, m2, work)
            if phase == 0:
                total = 0.0
                unit = 0.0
                fixed_sum = 0.0
                for ii in range(idx.size):
                    i = idx[ii]
                    total += c[i]
                    unit += m2[i] - fixed_bg[0, i]
                    fixed_sum += fixed_bg[0, i]
                scale = max(total - b0 * idx.size - fixed_sum, 1.0) / max(unit, 1e-12)
                for k in range(1 if mkind == 1 else nt):
                    new[nt + k] *= scale  # cascade: the total amplitude, parameter 2
                new[i_bg] = b0
                phase = 1
                continue
            f2 = objective_value(m2, c, idx, kind, tiny)
            accept = phase == 1 or (math.isfinite(f2) and f2 <= f)
            df = f - f2
            moved = False  # the candidate differs from the current point
            for a in range(p):
                if new[a] != theta[a]:
                    moved = True
            if accept:  # the derivatives only where the next step starts
                model_derivatives(new, irf, pmap, spec, fpar, jac, work)
                objective_derivatives(m2, jac, c, idx, kind, tiny, g, h)
                for a in range(p):  # loops: slice assignment costs seconds to compile
                    theta[a] = new[a]
                for i in range(n_total):
                    m[i] = m2[i]
                f = f2
            if phase == 1:
                if not math.isfinite(f):
                    break
                phase = 2
            elif accept:
                lam = max(lam * 0.1, 1e-9)
                if df < tol and lam <= 1e-2:
                    ok = True
                    break
                # cycle exit: a repeated state ends the iteration where the limit would
                if moved:
                    still_lam = -1.0
                elif lam == still_lam:
                    n_iter = max_iter
                    break
                else:
                    still_lam = lam
            else:
                lam *= 10.0
                if lam > 1e12:
                    # no descent possible: at a (constrained) minimum if the decrement is tiny
                    ok = decrement < 1e-4
                    break
            # the next step (a system that cannot be solved raises the damping)
            stepped = False
            while n_iter < max_iter:
                n_iter += 1
                n_free = 0
                for a in range(p):
                    at_lo = theta[a] <= lo[a] + 1e-12 * span[a] and g[a] > 0
                    at_hi = theta[a] >= hi[a] - 1e-12 * span[a] and g[a] < 0
                    mask[a] = 0.0 if fixed[a] != 0.0 or at_lo or at_hi else 1.0
                    n_free += int(mask[a])
                    rhs[a] = -g[a]
                    for b in range(p):
                        mat[a, b] = h[a, b]
                    dia = h[a, a]
                    mat[a, a] = dia + lam * (dia if dia > 0 else 1.0)
                if n_free == 0:
                    ok = True
                    break
                if not chol_solve(mat, mask, lw, rhs, step):
                    lam *= 10.0
                    if lam > 1e12:
                        break
                    continue
                decrement = 0.0
                for a in range(p):
                    decrement += rhs[a] * step[a]
                    new[a] = theta[a] + step[a]
                if 0 <= decrement < tol and lam <= 1e-2:
                    ok = True
                    break
                stepped = True
                break
            if not stepped:
                break
        stats_out[r, R_F] = f
        stats_out[r, R_NITER] = n_iter
        stats_out[r, R_CONVERGED] = 1.0 if ok else 0.0
        dev = 0.0
        chi2 = 0.0
        res = resid_out[r]
        for i in range(n_total):
            res[i] = np.nan
        for ii in range(idx.size):
            i = idx[ii]
            mm = max(m[i], tiny)
            if c[i] > 0:
                dev += c[i] * math.log(c[i] / mm)
            dev += mm - c[i]
            chi2 += (c[i] - m[i]) ** 2 / mm
            res[i] = (c[i] - m[i]) / math.sqrt(mm)
        stats_out[r, R_DEVIANCE] = 2.0 * dev
        stats_out[r, R_CHI2] = chi2
