"""Numba kernels of the fitting layer: arrays in, arrays out, no checks."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def exp_conv_periodic(irf, q):
    """Circular convolution of ``irf`` with the bin-integrated periodic exponential; d/dlog tau.

    The kernel is ``h_k = (1 - q) q**k / (1 - q**n)`` for k = 0..n-1 with ``q = exp(-bin/tau)``;
    it sums to 1 over the period, so ``y`` sums to ``irf.sum()``. Solved by the periodic
    recursion ``y_i = q y_{i-1} + (1 - q) irf_i`` (O(n), no FFT); ``dy`` is dy/d(ln tau) from the
    differentiated recursion ``z_i = q z_{i-1} + dq (y_{i-1} - irf_i)``, ``dq = -q ln q``.
    """
    n = irf.size
    y = np.empty(n)
    dy = np.empty(n)
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
    # derivative: u_i = dq (y_{i-1} - irf_i), periodic solution of z_i = q z_{i-1} + u_i
    dq = -q * np.log(q)
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
    return y, dy


@numba.njit(cache=True, nogil=True)
def exp_conv_periodic_value(irf, q):
    """Only the convolution ``y`` of :func:`exp_conv_periodic` (no derivative)."""
    n = irf.size
    y = np.empty(n)
    acc = 0.0
    qk = 1.0
    for k in range(n):
        acc += qk * irf[n - 1 - k]
        qk *= q
        if qk < 1e-300:
            break
    prev = (1.0 - q) * acc / (1.0 - q**n)
    for i in range(n):
        prev = q * prev + (1.0 - q) * irf[i]
        y[i] = prev
    return y


@numba.njit(cache=True, nogil=True)
def shift_rows(rows, delta, n_data):
    """Shift each row later by ``delta`` bins (periodic, Catmull-Rom cubic); first n_data bins.

    Output bin i takes the value at source position ``i - delta``; the cubic convolution is a
    partition of unity (sums are preserved) and C1 in ``delta``, so the objective has no kinks
    at whole-bin shifts (linear interpolation has them). Returns the rows and d/d(delta).
    """
    r, n = rows.shape
    s = int(np.floor(delta))
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
    out = np.empty((r, n_data))
    dout = np.empty((r, n_data))
    j0 = (-s) % n  # source index j0 of output bin 0
    for k in range(r):
        jp = j0 + 1 if j0 + 1 < n else 0
        jc = j0
        jm = j0 - 1 if j0 > 0 else n - 1
        jmm = jm - 1 if jm > 0 else n - 1
        for i in range(n_data):
            a = rows[k, jp]
            b = rows[k, jc]
            c = rows[k, jm]
            e = rows[k, jmm]
            out[k, i] = w0 * a + w1 * b + w2 * c + w3 * e
            dout[k, i] = d0 * a + d1 * b + d2 * c + d3 * e
            jmm = jm
            jm = jc
            jc = jp
            jp += 1
            if jp == n:
                jp = 0
    return out, dout


@numba.njit(cache=True, nogil=True)
def multiexp_model(sh, dsh, coef, bg, scatter, fixed, n_params, i_bg, i_shift, i_scatter):
    """Model and Jacobian of ``sum_k coef_k y_k + bg + scatter irf + fixed`` from shifted rows.

    ``sh`` rows: y_k (k < nt), dy_k/dlog tau_k, irf. Parameter order: log tau_k, amp_k,
    background, [shift], [scatter]; ``i_shift``/``i_scatter`` < 0 when absent.
    """
    nt = coef.size
    nd = sh.shape[1]
    m = np.empty(nd)
    jac = np.zeros((nd, n_params))
    for i in range(nd):
        v = bg + fixed[i]
        dm = 0.0
        for k in range(nt):
            v += coef[k] * sh[k, i]
            jac[i, k] = coef[k] * sh[nt + k, i]
            jac[i, nt + k] = sh[k, i]
            if i_shift >= 0:
                dm += coef[k] * dsh[k, i]
        if i_scatter >= 0:
            v += scatter * sh[2 * nt, i]
            jac[i, i_scatter] = sh[2 * nt, i]
            if i_shift >= 0:
                dm += scatter * dsh[2 * nt, i]
        jac[i, i_bg] = 1.0
        if i_shift >= 0:
            jac[i, i_shift] = dm
        m[i] = v
    return m, jac


@numba.njit(cache=True, nogil=True)
def objective_terms(m, jac, c, idx, kind, tiny):
    """Objective, gradient and Fisher-type Hessian over the bins ``idx``.

    kind 0 (and 3): Poisson deviance 2 sum(m - c + c ln(c/m)) with the Fisher curvature
    weights 1/m (observed weights c/m^2 were tried: more rejected steps); 1: Neyman chi2
    (weights 1/max(c, 1)); 2: Pearson chi2 sum (c - m)^2 / m.
    """
    p = jac.shape[1]
    g = np.zeros(p)
    h = np.zeros((p, p))
    f = 0.0
    for ii in range(idx.size):
        i = idx[ii]
        mi = m[i]
        ci = c[i]
        mm = mi if mi > tiny else tiny
        if kind == 0 or kind == 3:
            f += mm - ci
            if ci > 0:
                f += ci * np.log(ci / mm)
            gi = 1.0 - ci / mm
            wi = 1.0 / mm
        elif kind == 1:
            w = 1.0 / (ci if ci > 1.0 else 1.0)
            r = ci - mi
            f += w * r * r
            gi = -w * r
            wi = w
        else:
            r = ci - mm
            f += r * r / mm
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
        for b in range(a):
            h[b, a] = h[a, b]
    if kind == 0 or kind == 3:
        f *= 2.0
    return f, 2.0 * g, 2.0 * h
