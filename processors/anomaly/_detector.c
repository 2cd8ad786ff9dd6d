/*
 * The update step of processors.anomaly.detector's two detectors, in C.
 *
 * Why in C: the anomaly processor updates up to four detectors per span, and the
 * Python update is ~1-1.5 us of interpreted float arithmetic each, most of the
 * processor's cost. This is the same arithmetic, operation for operation and in the
 * same order, on the same IEEE doubles (built with -ffp-contract=off so no step is
 * fused), so it returns bit-identical scores and states; the pure-Python classes
 * stay as the reference the tests compare this with, and as the fallback without
 * a C compiler. Python raises where float math would (ZeroDivisionError,
 * "math domain error"); so does this, for the same inputs.
 *
 * DetectorCore(params) holds the state of Detector; ErrorShareCore(window_s,
 * min_errors, warmup, baseline_s, score_k) that of ErrorShareDetector. The Python
 * subclasses add the snapshot and parameter API.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <math.h>

#include "_detector.h"

PyTypeObject *detector_core_type, *error_share_core_type;

#define TINY 1e-9
#define POINT_MIN_ERROR 3.0
#define POINT_MIN_RARITY 4.6
#define HUBER 3.0
#define MAX_BINS 4096

static int zero_division(void) {
    PyErr_SetString(PyExc_ZeroDivisionError, "float division by zero");
    return -1;
}

static int domain_error(void) {
    PyErr_SetString(PyExc_ValueError, "math domain error");
    return -1;
}

/* ---------------------------------------------------------------- Detector */


static int read_double(PyObject *params, const char *name, double *out) {
    PyObject *v = PyObject_GetAttrString(params, name);
    if (v == NULL)
        return -1;
    *out = PyFloat_AsDouble(v);
    Py_DECREF(v);
    return (*out == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

static int read_long(PyObject *params, const char *name, long long *out) {
    PyObject *v = PyObject_GetAttrString(params, name);
    if (v == NULL)
        return -1;
    *out = PyLong_AsLongLong(v);
    Py_DECREF(v);
    return (*out == -1 && PyErr_Occurred()) ? -1 : 0;
}

static int detector_init(DetectorCore *self, PyObject *args, PyObject *kwargs) {
    PyObject *params;
    static char *kwlist[] = {"params", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:DetectorCore", kwlist, &params))
        return -1;
    long long bins, warmup;
    if (read_double(params, "level_alpha", &self->level_alpha) || read_double(params, "scale_alpha", &self->scale_alpha) ||
        read_double(params, "relative_floor", &self->relative_floor) ||
        read_double(params, "short_alpha", &self->short_alpha) || read_double(params, "long_alpha", &self->long_alpha) ||
        read_double(params, "histogram_alpha", &self->histogram_alpha) ||
        read_double(params, "alarm_z", &self->alarm_z) || read_double(params, "score_k", &self->score_k) ||
        read_double(params, "time_unit", &self->time_unit) || read_long(params, "warmup", &warmup) ||
        read_long(params, "refractory", &self->refractory) || read_long(params, "histogram_bins", &bins))
        return -1;
    if (bins < 1 || bins > MAX_BINS) {
        PyErr_Format(PyExc_ValueError, "histogram_bins must be in 1..%d", MAX_BINS);
        return -1;
    }
    double *counts = PyMem_Calloc((size_t)bins, sizeof(double));
    if (counts == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    PyMem_Free(self->counts);
    self->counts = counts;
    self->bins = (Py_ssize_t)bins;
    self->warmup = (double)warmup;
    self->log_keep = self->histogram_alpha < 1.0 ? log1p(-self->histogram_alpha) : -INFINITY;
    Py_INCREF(params);
    Py_XSETREF(self->params, params);
    self->n = self->quiet = 0;
    self->evidence = self->level = self->anchor = self->scale = 0.0;
    self->err_short = self->err_mean = self->err_var = 0.0;
    self->rare_short = self->rare_mean = self->rare_var = 0.0;
    self->lo = self->hi = self->total = 0.0;
    self->weight = 1.0;
    self->last_t = self->last_z = 0.0;
    return 0;
}

static int detector_traverse(DetectorCore *self, visitproc visit, void *arg) {
    Py_VISIT(self->params);
    Py_VISIT(Py_TYPE(self));
    return 0;
}

static int detector_clear(DetectorCore *self) {
    Py_CLEAR(self->params);
    return 0;
}

static void detector_dealloc(DetectorCore *self) {
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    detector_clear(self);
    PyMem_Free(self->counts);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

/* Python's int() of a float: truncation, refused for NaN and infinities. */
static int to_index(double v, Py_ssize_t *out) {
    if (!isfinite(v)) {
        PyErr_SetString(PyExc_ValueError, "cannot convert a non-finite float to an integer");
        return -1;
    }
    if (v >= 9.2e18 || v <= -9.2e18) {
        *out = v > 0 ? PY_SSIZE_T_MAX : PY_SSIZE_T_MIN;
        return 0;
    }
    long long j = (long long)v;
    *out = j > PY_SSIZE_T_MAX ? PY_SSIZE_T_MAX : (j < PY_SSIZE_T_MIN ? PY_SSIZE_T_MIN : (Py_ssize_t)j);
    return 0;
}

/* Stretch the histogram range past x (by 10 % of the span) and re-bin. */
static int widen(DetectorCore *d, double x) {
    double lo = d->lo, hi = d->hi;
    double span = hi - lo;
    double below = x - 0.1 * span, above = x + 0.1 * span;
    double new_lo = below < lo ? below : lo;
    double new_hi = above > hi ? above : hi;
    Py_ssize_t bins = d->bins;
    double width = span / (double)bins;
    if (new_hi - new_lo == 0.0)
        return zero_division();
    double factor = (double)bins / (new_hi - new_lo);
    double moved[MAX_BINS];
    for (Py_ssize_t i = 0; i < bins; i++)
        moved[i] = 0.0;
    for (Py_ssize_t i = 0; i < bins; i++) {
        double c = d->counts[i];
        if (c != 0.0) {
            Py_ssize_t j;
            if (to_index((lo + ((double)i + 0.5) * width - new_lo) * factor, &j) < 0)
                return -1;
            j = j < 0 ? 0 : j;
            moved[j > bins - 1 ? bins - 1 : j] += c;
        }
    }
    memcpy(d->counts, moved, (size_t)bins * sizeof(double));
    d->lo = new_lo;
    d->hi = new_hi;
    return 0;
}

/* -log p(x) under the decayed histogram, then count x in it with weight `evidence`. */
static int rarity(DetectorCore *d, double x, double evidence, double *out) {
    if (x < d->lo || x > d->hi) {
        if (widen(d, x) < 0)
            return -1;
    }
    double lo = d->lo, hi = d->hi;
    double *counts = d->counts;
    Py_ssize_t bins = d->bins;
    if (hi - lo == 0.0)
        return zero_division();
    Py_ssize_t j;
    if (to_index((x - lo) / (hi - lo) * (double)bins, &j) < 0)
        return -1;
    if (j >= bins)
        j = bins - 1;
    if (j < 0) /* Python would index from the end; only a corrupted snapshot gets here */
        j += bins;
    double left = j > 0 ? counts[j - 1] : 0.0;
    double right = j < bins - 1 ? counts[j + 1] : 0.0;
    double mass = counts[j] + 0.5 * (left + right);
    double denominator = d->total + 1e-300;
    if (denominator == 0.0)
        return zero_division();
    double argument = mass / denominator + 1e-4;
    if (argument <= 0.0)
        return domain_error();
    *out = -log(argument);
    if (evidence <= 0.0)
        return 0;
    double w;
    if (evidence == 1.0) {
        if (1.0 - d->histogram_alpha == 0.0)
            return zero_division();
        w = d->weight = d->weight / (1.0 - d->histogram_alpha);
    } else {
        w = d->weight = d->weight * exp(-evidence * d->log_keep);
    }
    counts[j] += w * evidence;
    d->total += w * evidence;
    if (w > 1e100) {
        for (Py_ssize_t i = 0; i < bins; i++)
            counts[i] /= w;
        d->total /= w;
        d->weight = 1.0;
    }
    return 0;
}

int detector_step(DetectorCore *d, double t, double x, double *score) {
    *score = 0.0;
    if (d->counts == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "DetectorCore.__init__ was not called");
        return -1;
    }
    if (!(x >= -MAX_VALUE && x <= MAX_VALUE)) /* NaN too: detector.py's MAX_VALUE */
        return 0;
    long long n = d->n = d->n + 1;
    double rare;
    if (n == 1) {
        d->evidence = 1.0;
        d->level = d->anchor = x;
        d->last_t = t;
        double margin = 1e-6 * fabs(x) + TINY;
        d->lo = x - margin;
        d->hi = x + margin;
        return rarity(d, x, 1.0, &rare);
    }
    double w = 1.0;
    if (d->time_unit > 0.0) {
        double dt = t - d->last_t;
        if (dt < d->time_unit)
            w = dt > 0.0 ? dt / d->time_unit : 0.0;
        if (dt > 0.0)
            d->last_t = t;
    }
    double ev = d->evidence = d->evidence + w;
    if (ev <= 0.0)
        return 0;

    double level = d->level;
    double err = x >= level ? x - level : level - x;
    double a = ev * d->scale_alpha > 1.0 ? d->scale_alpha * w : w / ev;
    double scale = d->scale = d->scale + a * (err - d->scale);
    double unit = scale + d->relative_floor * fabs(level) + TINY;
    if (unit == 0.0)
        return zero_division();
    double raw = err / unit;
    d->level = level + d->level_alpha * w * (x - level);
    double step = x - d->anchor;
    double gate_error = (step >= 0.0 ? step : -step) / unit;
    double bound = HUBER * unit;
    if (step > bound)
        step = bound;
    else if (step < -bound)
        step = -bound;
    d->anchor += d->level_alpha * w * step;

    double la = ev * d->long_alpha > 1.0 ? d->long_alpha * w : w / ev;
    double sa = d->short_alpha * w;
    double shrt = d->err_short = d->err_short + sa * (raw - d->err_short);
    double dev = shrt - d->err_mean;
    if (d->err_var < 0.0)
        return domain_error();
    double z = dev / (sqrt(d->err_var) + TINY);
    d->err_mean += la * dev;
    d->err_var = (1.0 - la) * (d->err_var + la * dev * dev);

    if (rarity(d, x, w, &rare) < 0)
        return -1;
    shrt = d->rare_short = d->rare_short + sa * (rare - d->rare_short);
    dev = shrt - d->rare_mean;
    if (d->rare_var < 0.0)
        return domain_error();
    double z_rare = dev / (sqrt(d->rare_var) + TINY);
    d->rare_mean += la * dev;
    d->rare_var = (1.0 - la) * (d->rare_var + la * dev * dev);

    if (z_rare > z)
        z = z_rare;
    if (ev < d->warmup)
        return 0;
    d->last_z = (gate_error >= POINT_MIN_ERROR || rare >= POINT_MIN_RARITY) ? z : 0.0;
    if (d->quiet > 0) {
        d->quiet -= 1;
        return 0;
    }
    if (z >= d->alarm_z)
        d->quiet = d->refractory;
    *score = z > 0.0 ? z / (z + d->score_k) : 0.0;
    return 0;
}

static int read_point(PyObject *const *args, Py_ssize_t nargs, const char *name, double *t, double *v) {
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError, "%s() takes 2 arguments (%zd given)", name, nargs);
        return -1;
    }
    *t = PyFloat_AsDouble(args[0]);
    if (*t == -1.0 && PyErr_Occurred())
        return -1;
    *v = PyFloat_AsDouble(args[1]);
    return (*v == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

static PyObject *detector_update(DetectorCore *self, PyObject *const *args, Py_ssize_t nargs) {
    double t, x, score;
    if (read_point(args, nargs, "update", &t, &x) < 0 || detector_step(self, t, x, &score) < 0)
        return NULL;
    return PyFloat_FromDouble(score);
}

static PyObject *detector_get_counts(DetectorCore *self, void *closure) {
    PyObject *out = PyList_New(self->counts == NULL ? 0 : self->bins);
    if (out == NULL || self->counts == NULL)
        return out;
    for (Py_ssize_t i = 0; i < self->bins; i++) {
        PyObject *c = PyFloat_FromDouble(self->counts[i]);
        if (c == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, c);
    }
    return out;
}

static int detector_set_counts(DetectorCore *self, PyObject *value, void *closure) {
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "counts cannot be deleted");
        return -1;
    }
    PyObject *seq = PySequence_Fast(value, "counts must be a sequence of floats");
    if (seq == NULL)
        return -1;
    int rc = -1;
    if (self->counts == NULL || PySequence_Fast_GET_SIZE(seq) != self->bins) {
        PyErr_SetString(PyExc_ValueError, "counts must have histogram_bins entries");
    } else {
        double values[MAX_BINS];
        Py_ssize_t i;
        for (i = 0; i < self->bins; i++) {
            values[i] = PyFloat_AsDouble(PySequence_Fast_GET_ITEM(seq, i));
            if (values[i] == -1.0 && PyErr_Occurred())
                break;
        }
        if (i == self->bins) {
            memcpy(self->counts, values, (size_t)self->bins * sizeof(double));
            rc = 0;
        }
    }
    Py_DECREF(seq);
    return rc;
}

#define D(field) {#field, T_DOUBLE, offsetof(DetectorCore, field), 0, NULL}
static PyMemberDef detector_members[] = {
    {"_p", T_OBJECT, offsetof(DetectorCore, params), READONLY, NULL},
    {"n", T_LONGLONG, offsetof(DetectorCore, n), 0, NULL},
    {"quiet", T_LONGLONG, offsetof(DetectorCore, quiet), 0, NULL},
    D(evidence), D(level), D(anchor), D(scale), D(err_short), D(err_mean), D(err_var), D(rare_short),
    D(rare_mean), D(rare_var), D(lo), D(hi), D(total), D(weight), D(last_t), D(last_z),
    {NULL, 0, 0, 0, NULL},
};
#undef D

static PyGetSetDef detector_getset[] = {
    {"counts", (getter)detector_get_counts, (setter)detector_set_counts, "the value histogram", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef detector_methods[] = {
    {"update", (PyCFunction)(void (*)(void))detector_update, METH_FASTCALL,
     "update(timestamp_seconds, value) -> score in [0, 1]"},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot detector_slots[] = {
    {Py_tp_doc, "The state and update step of processors.anomaly.Detector."},
    {Py_tp_init, detector_init},
    {Py_tp_dealloc, detector_dealloc},
    {Py_tp_traverse, detector_traverse},
    {Py_tp_clear, detector_clear},
    {Py_tp_members, detector_members},
    {Py_tp_getset, detector_getset},
    {Py_tp_methods, detector_methods},
    {0, NULL},
};

static PyType_Spec detector_spec = {
    "processors.anomaly._detector.DetectorCore", sizeof(DetectorCore), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC, detector_slots,
};

/* ---------------------------------------------------------- ErrorShareDetector */


#define PRIOR_CALLS 100.0
#define PRIOR_SHARE 0.01

static int error_share_init(ErrorShareCore *self, PyObject *args, PyObject *kwargs) {
    static char *kwlist[] = {"window_s", "min_errors", "warmup", "baseline_s", "score_k", NULL};
    long long warmup;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "ddLdd:ErrorShareCore", kwlist, &self->window_s,
                                     &self->min_errors, &warmup, &self->baseline_s, &self->score_k))
        return -1;
    self->warmup = (double)warmup;
    self->n = 0;
    self->last_t = self->recent_errors = self->recent_total = self->long_errors = self->long_total = 0.0;
    self->last_z = 0.0;
    return 0;
}

/* Algorithm AS241 (Wichura 1988), the standard normal quantile, evaluated as Python's
 * statistics.NormalDist.inv_cdf does (same coefficients, same order of operations). */
static double normal_quantile(double p) {
    double q = p - 0.5, r, num, den, x;
    if (fabs(q) <= 0.425) {
        r = 0.180625 - q * q;
        num = (((((((2.5090809287301226727e+3 * r + 3.3430575583588128105e+4) * r + 6.7265770927008700853e+4) * r +
                   4.5921953931549871457e+4) * r + 1.3731693765509461125e+4) * r + 1.9715909503065514427e+3) * r +
                1.3314166789178437745e+2) * r + 3.3871328727963666080e+0) * q;
        den = (((((((5.2264952788528545610e+3 * r + 2.8729085735721942674e+4) * r + 3.9307895800092710610e+4) * r +
                   2.1213794301586595867e+4) * r + 5.3941960214247511077e+3) * r + 6.8718700749205790830e+2) * r +
                4.2313330701600911252e+1) * r + 1.0);
        x = num / den;
        return 0.0 + (x * 1.0);
    }
    r = q <= 0.0 ? p : 1.0 - p;
    r = sqrt(-log(r));
    if (r <= 5.0) {
        r = r - 1.6;
        num = (((((((7.74545014278341407640e-4 * r + 2.27238449892691845833e-2) * r + 2.41780725177450611770e-1) * r +
                   1.27045825245236838258e+0) * r + 3.64784832476320460504e+0) * r + 5.76949722146069140550e+0) * r +
                4.63033784615654529590e+0) * r + 1.42343711074968357734e+0);
        den = (((((((1.05075007164441684324e-9 * r + 5.47593808499534494600e-4) * r + 1.51986665636164571966e-2) * r +
                   1.48103976427480074590e-1) * r + 6.89767334985100004550e-1) * r + 1.67638483018380384940e+0) * r +
                2.05319162663775882187e+0) * r + 1.0);
    } else {
        r = r - 5.0;
        num = (((((((2.01033439929228813265e-7 * r + 2.71155556874348757815e-5) * r + 1.24266094738807843860e-3) * r +
                   2.65321895265761230930e-2) * r + 2.96560571828504891230e-1) * r + 1.78482653991729133580e+0) * r +
                5.46378491116411436990e+0) * r + 6.65790464350110377720e+0);
        den = (((((((2.04426310338993978564e-15 * r + 1.42151175831644588870e-7) * r + 1.84631831751005468180e-5) * r +
                   7.86869131145613259100e-4) * r + 1.48753612908506148525e-2) * r + 1.36929880922735805310e-1) * r +
                5.99832206555887937690e-1) * r + 1.0);
    }
    x = num / den;
    if (q < 0.0)
        x = -x;
    return 0.0 + (x * 1.0);
}

#define SQRT_2PI sqrt(2.0 * 3.141592653589793) /* math.sqrt(2.0 * math.pi) */

/* Standard-normal z whose upper tail is exp(log_p); the Mills-ratio asymptote past what
 * a double can hold. */
static double z_of_log_tail(double log_p) {
    if (log_p >= 0.0)
        return -INFINITY;
    if (log_p > -700.0) {
        double p = exp(log_p);
        return p >= 1.0 ? -INFINITY : -normal_quantile(p);
    }
    double z = sqrt(-2.0 * log_p);
    for (int i = 0; i < 3; i++) {
        double v = -2.0 * log_p - 2.0 * log(z * SQRT_2PI);
        z = sqrt(v > 1e-12 ? v : 1e-12);
    }
    return z;
}

/* math.lgamma: CPython has its own implementation (a Lanczos approximation), whose
 * last bits differ from the C library's lgamma in about half of all cases. */
static PyObject *python_lgamma;

/* log P(X >= k) for X ~ Poisson(lam), k >= 0 real (decayed counts are fractional). */
static int log_poisson_tail(double k, double lam, double *out) {
    if (lam <= 0.0) {
        *out = k > 0.0 ? -INFINITY : 0.0;
        return 0;
    }
    if (k <= 0.0) {
        *out = 0.0;
        return 0;
    }
    PyObject *arg = PyFloat_FromDouble(k + 1.0);
    if (arg == NULL)
        return -1;
    PyObject *g = PyObject_Vectorcall(python_lgamma, &arg, 1, NULL);
    Py_DECREF(arg);
    if (g == NULL)
        return -1;
    double lg = PyFloat_AsDouble(g);
    Py_DECREF(g);
    if (lg == -1.0 && PyErr_Occurred())
        return -1;
    double log_term = k * log(lam) - lam - lg;
    double total = 1.0, term = 1.0;
    int j = 0;
    while (j < 1000) {
        term *= lam / (k + (double)j + 1.0);
        total += term;
        j += 1;
        if (term < 1e-12 * total)
            break;
    }
    double v = log_term + log(total);
    *out = v < 0.0 ? v : 0.0;
    return 0;
}

int error_share_step(ErrorShareCore *e, double t, double failed, int scored, double *score) {
    double dt = t - e->last_t;
    if (e->n && dt > 0.0) {
        if (e->window_s == 0.0 || e->baseline_s == 0.0)
            return zero_division();
        double decay = exp(-dt / e->window_s);
        e->recent_errors *= decay;
        e->recent_total *= decay;
        decay = exp(-dt / e->baseline_s);
        e->long_errors *= decay;
        e->long_total *= decay;
    }
    if (dt > 0.0 || !e->n)
        e->last_t = t;
    e->n += 1;
    e->recent_total += 1.0;
    e->recent_errors += failed;
    double denominator = e->long_total + PRIOR_CALLS;
    if (denominator == 0.0)
        return zero_division();
    double p0 = (e->long_errors + PRIOR_SHARE * PRIOR_CALLS) / denominator;
    double z = 0.0, errors = e->recent_errors;
    if (scored && (double)e->n >= e->warmup && errors >= e->min_errors) {
        double lam = e->recent_total * p0;
        double log_p;
        if (errors > lam) {
            if (log_poisson_tail(errors, lam, &log_p) < 0)
                return -1;
            z = z_of_log_tail(log_p);
        }
    }
    e->long_total += 1.0;
    e->long_errors += failed;
    e->last_z = z;
    *score = z > 0.0 ? z / (z + e->score_k) : 0.0;
    return 0;
}

static PyObject *error_share_update(ErrorShareCore *self, PyObject *const *args, Py_ssize_t nargs) {
    double t, failed, score;
    int scored = 1;
    if (nargs == 3) {
        if ((scored = PyObject_IsTrue(args[2])) < 0)
            return NULL;
        nargs = 2;
    }
    if (read_point(args, nargs, "update", &t, &failed) < 0 || error_share_step(self, t, failed, scored, &score) < 0)
        return NULL;
    return PyFloat_FromDouble(score);
}

static void error_share_dealloc(ErrorShareCore *self) {
    PyTypeObject *type = Py_TYPE(self);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

#define E(field) {#field, T_DOUBLE, offsetof(ErrorShareCore, field), 0, NULL}
static PyMemberDef error_share_members[] = {
    {"n", T_LONGLONG, offsetof(ErrorShareCore, n), 0, NULL},
    {"_window_s", T_DOUBLE, offsetof(ErrorShareCore, window_s), READONLY, NULL},
    {"_baseline_s", T_DOUBLE, offsetof(ErrorShareCore, baseline_s), READONLY, NULL},
    {"_min_errors", T_DOUBLE, offsetof(ErrorShareCore, min_errors), READONLY, NULL},
    {"_k", T_DOUBLE, offsetof(ErrorShareCore, score_k), READONLY, NULL},
    E(last_t), E(recent_errors), E(recent_total), E(long_errors), E(long_total), E(last_z),
    {NULL, 0, 0, 0, NULL},
};
#undef E

static PyMethodDef error_share_methods[] = {
    {"update", (PyCFunction)(void (*)(void))error_share_update, METH_FASTCALL,
     "update(timestamp_seconds, failed, scored=True) -> score in [0, 1] (0 when not scored)"},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot error_share_slots[] = {
    {Py_tp_doc, "The state and update step of processors.anomaly.ErrorShareDetector."},
    {Py_tp_init, error_share_init},
    {Py_tp_dealloc, error_share_dealloc},
    {Py_tp_members, error_share_members},
    {Py_tp_methods, error_share_methods},
    {0, NULL},
};

static PyType_Spec error_share_spec = {
    "processors.anomaly._detector.ErrorShareCore", sizeof(ErrorShareCore), 0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE, error_share_slots,
};

/* ------------------------------------------------------------------- module */

static PyObject *py_z_of_log_tail(PyObject *self, PyObject *arg) {
    double log_p = PyFloat_AsDouble(arg);
    if (log_p == -1.0 && PyErr_Occurred())
        return NULL;
    return PyFloat_FromDouble(z_of_log_tail(log_p));
}

static PyObject *py_log_poisson_tail(PyObject *self, PyObject *args) {
    double k, lam, log_p;
    if (!PyArg_ParseTuple(args, "dd:log_poisson_tail", &k, &lam) || log_poisson_tail(k, lam, &log_p) < 0)
        return NULL;
    return PyFloat_FromDouble(log_p);
}

static PyMethodDef module_methods[] = {
    {"z_of_log_tail", py_z_of_log_tail, METH_O, "z_of_log_tail(log_p) -> standard-normal z"},
    {"log_poisson_tail", py_log_poisson_tail, METH_VARARGS, "log_poisson_tail(k, lam) -> log P(X >= k)"},
    {NULL, NULL, 0, NULL},
};

static int module_exec(PyObject *module) {
    if (python_lgamma == NULL) {
        PyObject *math = PyImport_ImportModule("math");
        if (math == NULL)
            return -1;
        python_lgamma = PyObject_GetAttrString(math, "lgamma");
        Py_DECREF(math);
        if (python_lgamma == NULL)
            return -1;
    }
    PyObject *detector = PyType_FromModuleAndSpec(module, &detector_spec, NULL);
    if (detector == NULL || PyModule_AddObject(module, "DetectorCore", detector) < 0) {
        Py_XDECREF(detector);
        return -1;
    }
    detector_core_type = (PyTypeObject *)detector; /* the module keeps it */
    PyObject *error_share = PyType_FromModuleAndSpec(module, &error_share_spec, NULL);
    if (error_share == NULL || PyModule_AddObject(module, "ErrorShareCore", error_share) < 0) {
        Py_XDECREF(error_share);
        return -1;
    }
    error_share_core_type = (PyTypeObject *)error_share;
    return add_series_table(module);
}

static PyModuleDef_Slot module_slots[] = {
    {Py_mod_exec, module_exec},
    {0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_detector", "The anomaly detectors' update step in C.", 0, module_methods,
    module_slots, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__detector(void) { return PyModuleDef_Init(&module); }
