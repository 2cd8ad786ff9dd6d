/*
 * What processors/anomaly/_detector.c shares with _series.c (one extension module):
 * the detectors' state and update steps, and their types.
 */
#ifndef ANOMALY_DETECTOR_H
#define ANOMALY_DETECTOR_H

#include <Python.h>

/* Observations beyond this magnitude are skipped, as NaN is (detector.py's MAX_VALUE):
 * the histogram's range arithmetic would overflow to infinity. */
#define MAX_VALUE 1e100

typedef struct {
    PyObject_HEAD
    PyObject *params;
    double level_alpha, scale_alpha, relative_floor, short_alpha, long_alpha, histogram_alpha;
    double alarm_z, score_k, time_unit, warmup, log_keep;
    long long refractory;
    Py_ssize_t bins;
    double *counts;
    long long n, quiet;
    double evidence, level, anchor, scale, err_short, err_mean, err_var, rare_short, rare_mean, rare_var;
    double lo, hi, total, weight, last_t, last_z;
} DetectorCore;

typedef struct {
    PyObject_HEAD
    double window_s, min_errors, warmup, baseline_s, score_k;
    long long n;
    double last_t, recent_errors, recent_total, long_errors, long_total, last_z;
} ErrorShareCore;

/* Detector.update and ErrorShareDetector.update: 0 with the score, or -1 with the
 * exception Python's float math would raise. */
int detector_step(DetectorCore *d, double t, double x, double *score);
int error_share_step(ErrorShareCore *e, double t, double failed, int scored, double *score);

/* The module's DetectorCore and ErrorShareCore types (set when the module loads). */
extern PyTypeObject *detector_core_type, *error_share_core_type;

/* Adds SeriesTable (_series.c) to the module: 0, or -1 with an exception set. */
int add_series_table(PyObject *module);

#endif
