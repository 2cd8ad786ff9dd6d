/*
 * The span-derived GenAI metrics of one traces batch (exporters/prometheus/spanmetrics.py,
 * `aggregate_spans`), summed from the serialized request in one pass.
 *
 * Why in C: the Python aggregation reads a tuple of Python values per span from the C
 * scan and updates dicts keyed by label tuples, ~2-3 us per span, several times what the
 * receiver spends receiving that span. Here a span costs its walk plus a hash of its
 * label bytes; Python objects are made per label set (one per series and batch), and
 * per span only for the rare anomaly-flagged or redacted spans.
 *
 * aggregate(request, keys, agent_operations, token_bounds, duration_bounds,
 *           default_tenant, read_tenant, internal_agent_usage)
 *   -> (tokens, duration, cost, cost_spans, bases, extras)
 *
 * `keys`: the 12 span attribute keys in the order of spanmetrics._SPAN_KEYS (the slots
 * below). The dicts are BatchAggregate's, their keys inserted in the order the Python
 * loop would insert them; a histogram accumulator is [bucket counts, sum, count, last
 * value, its trace id, its span id, its end ns]. `bases`: each label set's (service,
 * provider, model, operation, tenant). `extras`: (base index, anomaly kinds list or
 * None, pii types, pii count, pii counts), converted as spanscan does (None when
 * absent), per span that holds anomaly kinds or pii types, in request order: Python
 * counts those.
 *
 * ValueError (the caller then aggregates in Python, the reference the tests compare this
 * with) on malformed bytes, a label that is not valid UTF-8 (the Python path's
 * replacement characters could merge two label sets), an array the parser would merge,
 * or a cost above 1e21 USD.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stddef.h>
#include <string.h>

#include "_wire.h"
#include "_spanwalk.h"

enum {
    S_TENANT,
    S_OPERATION,
    S_PROVIDER,
    S_MODEL,
    S_INPUT,
    S_OUTPUT,
    S_ERROR,
    S_COST,
    S_KINDS,
    S_PII_TYPES,
    S_PII_COUNT,
    S_PII_COUNTS,
    N_SLOTS
};

enum { L_SERVICE, L_PROVIDER, L_MODEL, L_OPERATION, L_TENANT, N_LABELS };

#define MAX_BOUNDS 64
#define MAX_AGENT_OPERATIONS 16
#define SPAN_KIND_CLIENT 3
#define STATUS_CODE_ERROR 2
/* Nano-USD per USD; costs are summed as integers, as the Python path does. */
#define NANO 1000000000.0
/* Above this a nano-USD amount no longer fits the 128-bit sums with room to spare. */
#define MAX_NANO 1e30

static const char ERROR_OTHER[] = "_OTHER";

typedef struct {
    int64_t counts[MAX_BOUNDS + 1];
    double total, value;
    int64_t count;
    Slice trace_id, span_id;
    uint64_t end;
} Hist;

typedef struct {
    Slice label[N_LABELS];
    uint64_t hash;
    PyObject *base; /* the label tuple */
    int has_tokens[2];
    Hist tokens[2];
    int has_cost;
    __int128 cost;
    int64_t cost_spans;
    Py_ssize_t durations; /* first of its Duration chain, -1 when none */
} Group;

typedef struct {
    Py_ssize_t group, next;
    Slice error;
    PyObject *error_text;
    Hist hist;
} Duration;

typedef struct {
    SpanWalk walk;
    const Key *keys;
    Py_ssize_t n_keys;
    Key agent_ops[MAX_AGENT_OPERATIONS];
    Py_ssize_t n_agent_ops;
    double token_bounds[MAX_BOUNDS], duration_bounds[MAX_BOUNDS];
    Py_ssize_t n_token_bounds, n_duration_bounds;
    Slice default_tenant;
    int read_tenant, internal_agent_usage;
    Slice service; /* of the current resource */

    Group *groups;
    Py_ssize_t n_groups, cap_groups;
    Py_ssize_t *table; /* open addressing: group index + 1, 0 when free */
    size_t table_mask;
    Duration *durations;
    Py_ssize_t n_durations, cap_durations;
    /* first observations, in order: group * 2 + token type */
    Py_ssize_t *token_order;
    Py_ssize_t n_token_order, cap_token_order;
    Py_ssize_t *cost_order;
    Py_ssize_t n_cost_order, cap_cost_order;
    PyObject *extras;
} Aggregation;

static inline uint64_t mix(uint64_t h, uint64_t v) {
    h = (h ^ v) * 0x9E3779B97F4A7C15ULL;
    return h ^ (h >> 29);
}

/* Eight bytes at a time: labels are hashed once per span. */
static uint64_t hash_labels(const Slice *label) {
    uint64_t h = 0;
    for (int l = 0; l < N_LABELS; l++) {
        const uint8_t *p = label[l].data;
        size_t n = label[l].len;
        h = mix(h, n);
        for (; n >= 8; n -= 8, p += 8) {
            uint64_t v;
            memcpy(&v, p, 8);
            h = mix(h, v);
        }
        if (n) {
            uint64_t v = 0;
            memcpy(&v, p, n);
            h = mix(h, v);
        }
    }
    return h;
}

static int same_slice(const Slice *a, const Slice *b) {
    return a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

static int same_labels(const Slice *a, const Slice *b) {
    for (int l = 0; l < N_LABELS; l++)
        if (!same_slice(&a[l], &b[l])) return 0;
    return 1;
}

/* A label as a str; ValueError when it is not valid UTF-8. */
static PyObject *label_text(const Slice *s) {
    PyObject *text = PyUnicode_DecodeUTF8((const char *)s->data, (Py_ssize_t)s->len, "strict");
    if (text == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear();
        PyErr_SetString(PyExc_ValueError, "a label is not valid UTF-8");
    }
    return text;
}

static int grow(void **items, Py_ssize_t *cap, Py_ssize_t need, size_t size) {
    if (need <= *cap) return 0;
    Py_ssize_t n = *cap ? *cap * 2 : 16;
    while (n < need) n *= 2;
    void *grown = PyMem_Realloc(*items, (size_t)n * size);
    if (grown == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    *items = grown;
    *cap = n;
    return 0;
}

static int rehash(Aggregation *a, size_t slots) {
    Py_ssize_t *table = PyMem_Calloc(slots, sizeof *table);
    if (table == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t g = 0; g < a->n_groups; g++) {
        size_t i = (size_t)a->groups[g].hash & (slots - 1);
        while (table[i]) i = (i + 1) & (slots - 1);
        table[i] = g + 1;
    }
    PyMem_Free(a->table);
    a->table = table;
    a->table_mask = slots - 1;
    return 0;
}

/* The index of the group of these labels, created when new; -1 with an exception set. */
static Py_ssize_t group_of(Aggregation *a, const Slice *label) {
    uint64_t h = hash_labels(label);
    size_t i = (size_t)h & a->table_mask;
    for (Py_ssize_t g; (g = a->table[i]) != 0; i = (i + 1) & a->table_mask) {
        Group *found = &a->groups[g - 1];
        if (found->hash == h && same_labels(found->label, label)) return g - 1;
    }
    if (grow((void **)&a->groups, &a->cap_groups, a->n_groups + 1, sizeof(Group)) < 0) return -1;
    PyObject *base = PyTuple_New(N_LABELS);
    if (base == NULL) return -1;
    for (int l = 0; l < N_LABELS; l++) {
        PyObject *text = label_text(&label[l]);
        if (text == NULL) {
            Py_DECREF(base);
            return -1;
        }
        PyTuple_SET_ITEM(base, l, text);
    }
    Py_ssize_t g = a->n_groups++;
    Group *group = &a->groups[g];
    memset(group, 0, offsetof(Group, tokens));
    memcpy(group->label, label, sizeof group->label);
    group->hash = h;
    group->base = base;
    group->has_cost = 0;
    group->cost = 0;
    group->cost_spans = 0;
    group->durations = -1;
    a->table[i] = g + 1;
    if ((size_t)a->n_groups * 2 > a->table_mask + 1 && rehash(a, (a->table_mask + 1) * 2) < 0) return -1;
    return g;
}

static void observe(Hist *h, const double *bounds, Py_ssize_t n_bounds, double value, const SpanFields *s) {
    Py_ssize_t bucket = 0; /* bisect_left: the bounds below the value */
    while (bucket < n_bounds && bounds[bucket] < value) bucket++;
    h->counts[bucket]++;
    h->total += value;
    h->count++;
    h->value = value;
    h->trace_id.data = s->trace_id;
    h->trace_id.len = s->trace_id_len;
    h->span_id.data = s->span_id;
    h->span_id.len = s->span_id_len;
    h->end = s->end;
}

static void new_hist(Hist *h) {
    memset(h->counts, 0, sizeof h->counts);
    h->total = 0.0;
    h->count = 0;
}

/* A found value; -1 with ValueError set when malformed. */
static int value_of(const SpanFields *s, int slot, Value *v) {
    if (parse_value(s->found_data[slot], s->found_len[slot], v) < 0) {
        PyErr_SetString(PyExc_ValueError, "malformed AnyValue");
        return -1;
    }
    return 0;
}

/* The slot's string value, "" when absent or not a string (spanmetrics._text). */
static int text_of(const SpanFields *s, int slot, Slice *out) {
    out->data = (const uint8_t *)"";
    out->len = 0;
    if (!s->found[slot]) return 0;
    Value v;
    if (value_of(s, slot, &v) < 0) return -1;
    if (v.kind == V_STRING) {
        out->data = v.data;
        out->len = v.len;
    }
    return 0;
}

/* spanmetrics._token_count: a double as it is, a non-zero int as a double, else 0. */
static int token_count(const SpanFields *s, int slot, double *out) {
    Value v;
    if (value_of(s, slot, &v) < 0) return -1;
    *out = 0.0;
    if (v.kind == V_DOUBLE) memcpy(out, &v.scalar, sizeof *out);
    else if (v.kind == V_INT) *out = (double)(int64_t)v.scalar;
    return 0;
}

/* The cost in nano-USD, rounded half to even as Python's round(); *counted 0 when the
 * value is no positive finite amount (spanmetrics._cost_nano). */
static int cost_nano(const SpanFields *s, __int128 *out, int *counted) {
    Value v;
    if (value_of(s, S_COST, &v) < 0) return -1;
    *counted = 0;
    if (v.kind == V_INT) {
        int64_t n = (int64_t)v.scalar;
        if (n > 0) {
            *out = (__int128)n * 1000000000;
            *counted = 1;
        }
    } else if (v.kind == V_DOUBLE) {
        double d;
        memcpy(&d, &v.scalar, sizeof d);
        if (d > 0 && isfinite(d)) {
            double nano = d * NANO;
            if (nano >= MAX_NANO) {
                PyErr_SetString(PyExc_ValueError, "a cost too large to sum here");
                return -1;
            }
            /* nearbyint rounds half to even in the default rounding mode; above 2^53
             * every double is an integer already. */
            *out = (__int128)nearbyint(nano);
            *counted = 1;
        }
    }
    return 0;
}

static int is_agent_operation(const Aggregation *a, const Slice *operation) {
    for (Py_ssize_t k = 0; k < a->n_agent_ops; k++)
        if ((size_t)a->agent_ops[k].len == operation->len &&
            memcmp(a->agent_ops[k].data, operation->data, operation->len) == 0)
            return 1;
    return 0;
}

static Hist *duration_hist(Aggregation *a, Py_ssize_t g, const Slice *error) {
    Py_ssize_t d;
    for (d = a->groups[g].durations; d >= 0; d = a->durations[d].next)
        if (same_slice(&a->durations[d].error, error)) return &a->durations[d].hist;
    if (grow((void **)&a->durations, &a->cap_durations, a->n_durations + 1, sizeof(Duration)) < 0) return NULL;
    PyObject *text = label_text(error);
    if (text == NULL) return NULL;
    d = a->n_durations++;
    Duration *dur = &a->durations[d];
    dur->group = g;
    dur->error = *error;
    dur->error_text = text;
    dur->next = a->groups[g].durations;
    a->groups[g].durations = d;
    new_hist(&dur->hist);
    return &dur->hist;
}

static int order(Py_ssize_t **order, Py_ssize_t *n, Py_ssize_t *cap, Py_ssize_t value) {
    if (grow((void **)order, cap, *n + 1, sizeof **order) < 0) return -1;
    (*order)[(*n)++] = value;
    return 0;
}

static int extra(Aggregation *a, Py_ssize_t g, const SpanFields *s, int kinds_array) {
    PyObject *item = PyTuple_New(5);
    PyObject *index = PyLong_FromSsize_t(g);
    if (item == NULL || index == NULL) {
        Py_XDECREF(item);
        Py_XDECREF(index);
        return -1;
    }
    PyTuple_SET_ITEM(item, 0, index);
    static const int slots[4] = {S_KINDS, S_PII_TYPES, S_PII_COUNT, S_PII_COUNTS};
    for (int k = 0; k < 4; k++) {
        int slot = slots[k];
        PyObject *v;
        if (!s->found[slot] || (slot == S_KINDS && !kinds_array)) v = Py_NewRef(Py_None);
        else v = convert(s->found_data[slot], s->found_len[slot], 0);
        if (v == NULL) {
            Py_DECREF(item);
            return -1;
        }
        PyTuple_SET_ITEM(item, k + 1, v);
    }
    return append_row(a->extras, item);
}

static int aggregate_resource(SpanWalk *w, const uint8_t *resource_spans, size_t len) {
    return service_text(resource_spans, len, &((Aggregation *)w)->service);
}

static int aggregate_span(SpanWalk *w, const uint8_t *msg, size_t len, int ri, int si, int i) {
    Aggregation *a = (Aggregation *)w;
    SpanFields s;
    if (read_span(msg, len, a->keys, a->n_keys, &s) < 0) return -1;
    if (!s.any) return 0;
    Slice label[N_LABELS];
    label[L_SERVICE] = a->service;
    if (s.found[S_TENANT] && a->read_tenant) {
        if (text_of(&s, S_TENANT, &label[L_TENANT]) < 0) return -1;
    } else {
        label[L_TENANT] = a->default_tenant;
    }
    if (text_of(&s, S_OPERATION, &label[L_OPERATION]) < 0 || text_of(&s, S_PROVIDER, &label[L_PROVIDER]) < 0 ||
        text_of(&s, S_MODEL, &label[L_MODEL]) < 0)
        return -1;
    int genai = label[L_OPERATION].len || label[L_PROVIDER].len;
    int kinds_array = 0;
    if (s.found[S_KINDS]) {
        Value kinds;
        if (value_of(&s, S_KINDS, &kinds) < 0) return -1;
        kinds_array = kinds.kind == V_ARRAY;
    }
    int has_extra = kinds_array || s.found[S_PII_TYPES];
    if (!genai && !has_extra) return 0;
    Py_ssize_t g = group_of(a, label);
    if (g < 0) return -1;
    if (genai) {
        if (a->internal_agent_usage || !is_agent_operation(a, &label[L_OPERATION]) ||
            enum_value(s.kind) == SPAN_KIND_CLIENT) {
            for (int t = 0; t < 2; t++) {
                int slot = t == 0 ? S_INPUT : S_OUTPUT;
                if (!s.found[slot]) continue;
                double count;
                if (token_count(&s, slot, &count) < 0) return -1;
                Group *group = &a->groups[g];
                if (!group->has_tokens[t]) {
                    if (order(&a->token_order, &a->n_token_order, &a->cap_token_order, g * 2 + t) < 0) return -1;
                    group->has_tokens[t] = 1;
                    new_hist(&group->tokens[t]);
                }
                observe(&group->tokens[t], a->token_bounds, a->n_token_bounds, count, &s);
            }
        }
        Slice error = {(const uint8_t *)"", 0};
        if (s.found[S_ERROR]) {
            if (text_of(&s, S_ERROR, &error) < 0) return -1;
            if (error.len == 0) error = (Slice){(const uint8_t *)ERROR_OTHER, sizeof ERROR_OTHER - 1};
        } else if (enum_value(s.code) == STATUS_CODE_ERROR) {
            error = (Slice){(const uint8_t *)ERROR_OTHER, sizeof ERROR_OTHER - 1};
        }
        if (s.end >= s.start) {
            Hist *h = duration_hist(a, g, &error);
            if (h == NULL) return -1;
            observe(h, a->duration_bounds, a->n_duration_bounds, (double)(s.end - s.start) / 1e9, &s);
        }
        if (s.found[S_COST]) {
            __int128 nano;
            int counted;
            if (cost_nano(&s, &nano, &counted) < 0) return -1;
            Group *group = &a->groups[g];
            if (counted) {
                if (!group->has_cost) {
                    if (order(&a->cost_order, &a->n_cost_order, &a->cap_cost_order, g) < 0) return -1;
                    group->has_cost = 1;
                }
                group->cost += nano;
                group->cost_spans++;
            }
        }
    }
    return has_extra ? extra(a, g, &s, kinds_array) : 0;
}

/* --------------------------------------------------------------------- results */

static PyObject *int128(__int128 v) {
    if (v >= INT64_MIN && v <= INT64_MAX) return PyLong_FromLongLong((long long)v);
    /* Exact beyond 64 bits: high * 2**64 + low (only for absurd reported costs). */
    PyObject *high = PyLong_FromLongLong((long long)(v >> 64));
    PyObject *low = PyLong_FromUnsignedLongLong((unsigned long long)(uint64_t)v);
    PyObject *shift = PyLong_FromLong(64);
    PyObject *shifted = high && shift ? PyNumber_Lshift(high, shift) : NULL;
    PyObject *out = shifted && low ? PyNumber_Add(shifted, low) : NULL;
    Py_XDECREF(high);
    Py_XDECREF(low);
    Py_XDECREF(shift);
    Py_XDECREF(shifted);
    return out;
}

static PyObject *hist_acc(const Hist *h, Py_ssize_t n_bounds) {
    PyObject *counts = PyList_New(n_bounds + 1);
    if (counts == NULL) return NULL;
    for (Py_ssize_t b = 0; b <= n_bounds; b++) {
        PyObject *c = PyLong_FromLongLong(h->counts[b]);
        if (c == NULL) {
            Py_DECREF(counts);
            return NULL;
        }
        PyList_SET_ITEM(counts, b, c);
    }
    return Py_BuildValue("[NdLdy#y#K]", counts, h->total, (long long)h->count, h->value,
                         (const char *)h->trace_id.data, (Py_ssize_t)h->trace_id.len, (const char *)h->span_id.data,
                         (Py_ssize_t)h->span_id.len, (unsigned long long)h->end);
}

/* (*base, last) as a new tuple. */
static PyObject *key_with(PyObject *base, PyObject *last) {
    PyObject *key = PyTuple_New(N_LABELS + 1);
    if (key == NULL) return NULL;
    for (int l = 0; l < N_LABELS; l++) PyTuple_SET_ITEM(key, l, Py_NewRef(PyTuple_GET_ITEM(base, l)));
    PyTuple_SET_ITEM(key, N_LABELS, Py_NewRef(last));
    return key;
}

static int set_new(PyObject *dict, PyObject *key, PyObject *value) {
    int rc = key != NULL && value != NULL ? PyDict_SetItem(dict, key, value) : -1;
    Py_XDECREF(key);
    Py_XDECREF(value);
    return rc;
}

static PyObject *results(Aggregation *a) {
    PyObject *tokens = PyDict_New(), *duration = PyDict_New(), *cost = PyDict_New(), *cost_spans = PyDict_New();
    PyObject *bases = PyList_New(a->n_groups);
    PyObject *types[2] = {PyUnicode_FromString("input"), PyUnicode_FromString("output")};
    PyObject *out = NULL;
    if (!tokens || !duration || !cost || !cost_spans || !bases || !types[0] || !types[1]) goto done;
    for (Py_ssize_t g = 0; g < a->n_groups; g++) PyList_SET_ITEM(bases, g, Py_NewRef(a->groups[g].base));
    for (Py_ssize_t k = 0; k < a->n_token_order; k++) {
        const Group *group = &a->groups[a->token_order[k] / 2];
        int t = (int)(a->token_order[k] % 2);
        if (set_new(tokens, key_with(group->base, types[t]), hist_acc(&group->tokens[t], a->n_token_bounds)) < 0)
            goto done;
    }
    for (Py_ssize_t d = 0; d < a->n_durations; d++) {
        const Duration *dur = &a->durations[d];
        PyObject *key = key_with(a->groups[dur->group].base, dur->error_text);
        if (set_new(duration, key, hist_acc(&dur->hist, a->n_duration_bounds)) < 0) goto done;
    }
    for (Py_ssize_t k = 0; k < a->n_cost_order; k++) {
        const Group *group = &a->groups[a->cost_order[k]];
        if (set_new(cost, Py_NewRef(group->base), int128(group->cost)) < 0 ||
            set_new(cost_spans, Py_NewRef(group->base), PyLong_FromLongLong(group->cost_spans)) < 0)
            goto done;
    }
    out = PyTuple_Pack(6, tokens, duration, cost, cost_spans, bases, a->extras);
done:
    Py_XDECREF(tokens);
    Py_XDECREF(duration);
    Py_XDECREF(cost);
    Py_XDECREF(cost_spans);
    Py_XDECREF(bases);
    Py_XDECREF(types[0]);
    Py_XDECREF(types[1]);
    return out;
}

/* ----------------------------------------------------------------------- entry */

static int parse_bounds(PyObject *tuple, double *bounds, Py_ssize_t *n) {
    *n = PyTuple_GET_SIZE(tuple);
    if (*n > MAX_BOUNDS) {
        PyErr_Format(PyExc_ValueError, "at most %d bucket bounds", MAX_BOUNDS);
        return -1;
    }
    for (Py_ssize_t b = 0; b < *n; b++) {
        bounds[b] = PyFloat_AsDouble(PyTuple_GET_ITEM(tuple, b));
        if (bounds[b] == -1.0 && PyErr_Occurred()) return -1;
    }
    return 0;
}

static void release(Aggregation *a) {
    for (Py_ssize_t g = 0; g < a->n_groups; g++) Py_DECREF(a->groups[g].base);
    for (Py_ssize_t d = 0; d < a->n_durations; d++) Py_DECREF(a->durations[d].error_text);
    PyMem_Free(a->groups);
    PyMem_Free(a->durations);
    PyMem_Free(a->table);
    PyMem_Free(a->token_order);
    PyMem_Free(a->cost_order);
    Py_XDECREF(a->extras);
    Py_XDECREF(a->walk.out);
}

PyDoc_STRVAR(aggregate_doc,
             "aggregate(request, keys, agent_operations, token_bounds, duration_bounds,\n"
             "          default_tenant, read_tenant, internal_agent_usage)\n"
             "-> (tokens, duration, cost, cost_spans, bases, extras)\n\n"
             "The span-derived metrics of a serialized ExportTraceServiceRequest, summed per\n"
             "label set (see the module's source for the layout).");

static PyObject *aggregate(PyObject *self, PyObject *args) {
    Py_buffer request;
    PyObject *key_tuple, *agent_tuple, *token_tuple, *duration_tuple, *tenant, *out = NULL;
    int read_tenant, internal_agent_usage;
    if (!PyArg_ParseTuple(args, "y*O!O!O!O!Upp:aggregate", &request, &PyTuple_Type, &key_tuple, &PyTuple_Type,
                          &agent_tuple, &PyTuple_Type, &token_tuple, &PyTuple_Type, &duration_tuple, &tenant,
                          &read_tenant, &internal_agent_usage))
        return NULL;
    Key keys[MAX_KEYS];
    Aggregation a;
    memset(&a, 0, sizeof a);
    a.walk = (SpanWalk){aggregate_resource, aggregate_span, no_end_resource, NULL};
    a.keys = keys;
    a.read_tenant = read_tenant;
    a.internal_agent_usage = internal_agent_usage;
    Py_ssize_t tenant_len;
    a.default_tenant.data = (const uint8_t *)PyUnicode_AsUTF8AndSize(tenant, &tenant_len);
    a.default_tenant.len = (size_t)tenant_len;
    if (a.default_tenant.data == NULL || parse_keys(key_tuple, keys, &a.n_keys) < 0) goto done;
    if (a.n_keys != N_SLOTS) {
        PyErr_Format(PyExc_TypeError, "%d keys expected", N_SLOTS);
        goto done;
    }
    if (PyTuple_GET_SIZE(agent_tuple) > MAX_AGENT_OPERATIONS) {
        PyErr_Format(PyExc_TypeError, "at most %d agent operations", MAX_AGENT_OPERATIONS);
        goto done;
    }
    if (parse_keys(agent_tuple, a.agent_ops, &a.n_agent_ops) < 0 ||
        parse_bounds(token_tuple, a.token_bounds, &a.n_token_bounds) < 0 ||
        parse_bounds(duration_tuple, a.duration_bounds, &a.n_duration_bounds) < 0)
        goto done;
    a.extras = PyList_New(0);
    if (a.extras == NULL || rehash(&a, 64) < 0) goto done;
    /* walk() collects rows into walk.out; this walk appends none. */
    if (walk(&request, &a.walk) == NULL) goto done;
    out = results(&a);
done:
    release(&a);
    PyBuffer_Release(&request);
    return out;
}

static PyMethodDef methods[] = {
    {"aggregate", aggregate, METH_VARARGS, aggregate_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_spanmetrics", "Span-derived GenAI metrics summed from serialized OTLP requests.", -1,
    methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__spanmetrics(void) { return PyModule_Create(&module); }
