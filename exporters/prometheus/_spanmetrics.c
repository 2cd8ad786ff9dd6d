/*
 * The span-derived GenAI metrics (exporters/prometheus/spanmetrics.py), summed from
 * serialized requests.
 *
 * Why in C: the Python aggregation reads a tuple of Python values per span from the C
 * scan and updates dicts keyed by label tuples, ~2-3 us per span, several times what the
 * receiver spends receiving that span; and merging each request's sums into the series
 * costs Python work per label set and request. Here a span costs its walk plus a hash of
 * its label bytes, and the sums stay in C across requests until `drain` hands them to
 * Python (at scrape time): Python objects are made per new label set, and per span only
 * for the rare anomaly-flagged or redacted spans.
 *
 * Accumulator(keys, agent_operations, token_bounds, duration_bounds)
 *   `keys`: the 12 span attribute keys in the order of spanmetrics._SPAN_KEYS (the slots
 *   below); spans whose operation is one of `agent_operations` report roll-up usage.
 * .add(requests, default_tenant, read_tenant, internal_agent_usage) -> extras
 *   `requests`: a tuple of serialized ExportTraceServiceRequests (bytes-like), read as
 *   their merge. `extras`: (labels, anomaly kinds list or None, pii types, pii count, pii
 *   counts), converted as spanscan does (None when absent), per span that holds anomaly
 *   kinds or pii types, in request order: Python counts those. A request the code
 *   declines (ValueError) leaves the sums as they were: the caller then sums it in
 *   Python. Declined: malformed bytes, a label that is not valid UTF-8 (the Python
 *   path's replacement characters could merge two label sets), an array the parser
 *   would merge, a trace or span id longer than 32 bytes, a cost above 1e21 USD.
 * .drain() -> (tokens, duration, cost, cost_spans)
 *   The sums since the last drain as BatchAggregate's dicts, their keys in the order the
 *   Python loop would insert them; a histogram accumulator is [bucket counts, sum,
 *   count, last value, its trace id, its span id, its end ns].
 * .series_count(), .clear(): label sets remembered, and forgetting them.
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
#define MAX_ID 32
#define SPAN_KIND_CLIENT 3
#define STATUS_CODE_ERROR 2
/* Nano-USD per USD; costs are summed as integers, as the Python path does. */
#define NANO 1000000000.0
/* Above this a nano-USD amount no longer fits the 128-bit sums with room to spare. */
#define MAX_NANO 1e30

static const char ERROR_OTHER[] = "_OTHER";

/* ------------------------------------------------------------- label set tables */

/* First member of both a request's groups and the accumulator's series. */
typedef struct {
    Slice label[N_LABELS];
    uint64_t hash;
} Labels;

/* Open addressing over an array of structs that start with Labels: index + 1, 0 free. */
typedef struct {
    Py_ssize_t *slots;
    size_t mask;
} Table;

/* Labels are hashed once per span: each on its own, so that the multiply chains of the
 * five overlap (one chain through all of them was a tenth of a span's cost), then
 * combined. */
static uint64_t hash_labels(const Slice *label) {
    uint64_t part[N_LABELS];
    for (int l = 0; l < N_LABELS; l++) part[l] = hash_text((uint64_t)l, label[l].data, label[l].len);
    uint64_t h = 0;
    for (int l = 0; l < N_LABELS; l++) h = hash_mix(h, part[l]);
    return h;
}

static int same_slice(const Slice *a, const Slice *b) {
    return a->len == b->len && same_bytes(a->data, b->data, a->len);
}

static int same_labels(const Slice *a, const Slice *b) {
    for (int l = 0; l < N_LABELS; l++)
        if (!same_slice(&a[l], &b[l])) return 0;
    return 1;
}

static const Labels *labels_at(const void *items, size_t stride, Py_ssize_t i) {
    return (const Labels *)((const char *)items + (size_t)i * stride);
}

static int table_resize(Table *t, size_t slots, const void *items, size_t stride, Py_ssize_t n) {
    Py_ssize_t *fresh = PyMem_Calloc(slots, sizeof *fresh);
    if (fresh == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        size_t at = (size_t)labels_at(items, stride, i)->hash & (slots - 1);
        while (fresh[at]) at = (at + 1) & (slots - 1);
        fresh[at] = i + 1;
    }
    PyMem_Free(t->slots);
    t->slots = fresh;
    t->mask = slots - 1;
    return 0;
}

/* The index of these labels, or -1 with `*free_slot` where they would go. */
static Py_ssize_t table_find(const Table *t, const void *items, size_t stride, const Slice *label, uint64_t h,
                             size_t *free_slot) {
    size_t at = (size_t)h & t->mask;
    for (Py_ssize_t i; (i = t->slots[at]) != 0; at = (at + 1) & t->mask) {
        const Labels *found = labels_at(items, stride, i - 1);
        if (found->hash != h) continue;
        if (same_labels(found->label, label)) return i - 1;
    }
    *free_slot = at;
    return -1;
}

/* Records item `i` (the n-th) at the slot table_find gave; keeps the load under half. */
static int table_put(Table *t, size_t slot, Py_ssize_t i, const void *items, size_t stride, Py_ssize_t n) {
    t->slots[slot] = i + 1;
    if ((size_t)n * 2 > t->mask + 1) return table_resize(t, (t->mask + 1) * 2, items, stride, n);
    return 0;
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

static int push(Py_ssize_t **order, Py_ssize_t *n, Py_ssize_t *cap, Py_ssize_t value) {
    if (grow((void **)order, cap, *n + 1, sizeof **order) < 0) return -1;
    (*order)[(*n)++] = value;
    return 0;
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

/* --------------------------------------------------------------- accumulator */

typedef struct {
    int64_t counts[MAX_BOUNDS + 1];
    double total, value;
    int64_t count;
    uint8_t trace_id[MAX_ID], span_id[MAX_ID];
    size_t trace_id_len, span_id_len;
    uint64_t end;
} SeriesHist;

typedef struct {
    Labels labels; /* slices into `text` */
    uint8_t *text;
    PyObject *base; /* the label tuple */
    int has_tokens[2];
    SeriesHist tokens[2];
    int has_cost;
    __int128 cost;
    int64_t cost_spans;
    Py_ssize_t durations; /* first of its SeriesDuration chain, -1 when none */
} Series;

typedef struct {
    Py_ssize_t series, next;
    Slice error; /* into `text` */
    uint8_t *text;
    PyObject *error_text;
    int active;
    SeriesHist hist;
} SeriesDuration;

typedef struct {
    PyObject_HEAD
    PyObject *key_tuple, *agent_tuple; /* own the keys' UTF-8 buffers */
    Key keys[N_SLOTS];
    KeyIndex key_index;
    Key agent_ops[MAX_AGENT_OPERATIONS];
    Py_ssize_t n_agent_ops;
    double token_bounds[MAX_BOUNDS], duration_bounds[MAX_BOUNDS];
    Py_ssize_t n_token_bounds, n_duration_bounds;

    Series *series;
    Py_ssize_t n_series, cap_series;
    Table table;
    SeriesDuration *durations;
    Py_ssize_t n_durations, cap_durations;
    /* first observations since the last drain, in order */
    Py_ssize_t *token_order; /* series * 2 + token type */
    Py_ssize_t n_token_order, cap_token_order;
    Py_ssize_t *duration_order;
    Py_ssize_t n_duration_order, cap_duration_order;
    Py_ssize_t *cost_order;
    Py_ssize_t n_cost_order, cap_cost_order;
} Accumulator;

/* --------------------------------------------------------- one call's sums */

typedef struct {
    int64_t counts[MAX_BOUNDS + 1];
    double total, value;
    int64_t count;
    Slice trace_id, span_id; /* into the request */
    uint64_t end;
} Hist;

typedef struct {
    Labels labels; /* slices into the request (or the default tenant) */
    Py_ssize_t series; /* the accumulator's, -1 when new */
    PyObject *base;    /* a new series' label tuple */
    int has_tokens[2];
    Hist tokens[2];
    int has_cost;
    __int128 cost;
    int64_t cost_spans;
    Py_ssize_t durations;
} Group;

typedef struct {
    Py_ssize_t group, next;
    Slice error;
    Py_ssize_t known; /* the accumulator's SeriesDuration, -1 when new */
    PyObject *error_text; /* a new one's */
    Hist hist;
} Duration;

typedef struct {
    SpanWalk walk;
    Accumulator *acc;
    Slice default_tenant;
    int read_tenant, internal_agent_usage;
    Slice service; /* of the current resource */
    Group *groups;
    Py_ssize_t n_groups, cap_groups;
    Table table;
    Duration *durations;
    Py_ssize_t n_durations, cap_durations;
    Py_ssize_t *token_order; /* group * 2 + token type */
    Py_ssize_t n_token_order, cap_token_order;
    Py_ssize_t *cost_order;
    Py_ssize_t n_cost_order, cap_cost_order;
    PyObject *extras; /* (group index, ...) until the commit names the labels */
} Call;

/* The index of the call's group of these labels, created when new; -1 with an exception set. */
static Py_ssize_t group_of(Call *c, const Slice *label) {
    uint64_t h = hash_labels(label);
    size_t slot;
    Py_ssize_t g = table_find(&c->table, c->groups, sizeof(Group), label, h, &slot);
    if (g >= 0) return g;
    if (grow((void **)&c->groups, &c->cap_groups, c->n_groups + 1, sizeof(Group)) < 0) return -1;
    Accumulator *acc = c->acc;
    size_t series_slot;
    Py_ssize_t series = table_find(&acc->table, acc->series, sizeof(Series), label, h, &series_slot);
    PyObject *base = NULL;
    if (series < 0) { /* validated now, so that the commit cannot fail */
        base = PyTuple_New(N_LABELS);
        if (base == NULL) return -1;
        for (int l = 0; l < N_LABELS; l++) {
            PyObject *text = label_text(&label[l]);
            if (text == NULL) {
                Py_DECREF(base);
                return -1;
            }
            PyTuple_SET_ITEM(base, l, text);
        }
    }
    g = c->n_groups++;
    Group *group = &c->groups[g];
    memcpy(group->labels.label, label, sizeof group->labels.label);
    group->labels.hash = h;
    group->series = series;
    group->base = base;
    group->has_tokens[0] = group->has_tokens[1] = 0;
    group->has_cost = 0;
    group->cost = 0;
    group->cost_spans = 0;
    group->durations = -1;
    if (table_put(&c->table, slot, g, c->groups, sizeof(Group), c->n_groups) < 0) return -1;
    return g;
}

/* Only the buckets in use are cleared (and ever read). */
static void new_hist(Hist *h, Py_ssize_t n_buckets) {
    memset(h->counts, 0, (size_t)n_buckets * sizeof h->counts[0]);
    h->total = 0.0;
    h->count = 0;
}

static int observe(Hist *h, const double *bounds, Py_ssize_t n_bounds, double value, const SpanFields *s) {
    if (s->trace_id_len > MAX_ID || s->span_id_len > MAX_ID) {
        PyErr_SetString(PyExc_ValueError, "an id longer than 32 bytes");
        return -1;
    }
    Py_ssize_t bucket = 0; /* bisect_left: the bounds below the value */
    while (bucket < n_bounds && bounds[bucket] < value) bucket++;
    h->counts[bucket]++;
    h->total += value;
    h->count++;
    h->value = value;
    h->trace_id = (Slice){s->trace_id, s->trace_id_len};
    h->span_id = (Slice){s->span_id, s->span_id_len};
    h->end = s->end;
    return 0;
}

static Hist *duration_hist(Call *c, Py_ssize_t g, const Slice *error) {
    Py_ssize_t d;
    for (d = c->groups[g].durations; d >= 0; d = c->durations[d].next)
        if (same_slice(&c->durations[d].error, error)) return &c->durations[d].hist;
    Py_ssize_t known = -1;
    const Accumulator *acc = c->acc;
    if (c->groups[g].series >= 0)
        for (known = acc->series[c->groups[g].series].durations; known >= 0; known = acc->durations[known].next)
            if (same_slice(&acc->durations[known].error, error)) break;
    PyObject *text = NULL;
    if (known < 0 && (text = label_text(error)) == NULL) return NULL;
    if (grow((void **)&c->durations, &c->cap_durations, c->n_durations + 1, sizeof(Duration)) < 0) {
        Py_XDECREF(text);
        return NULL;
    }
    d = c->n_durations++;
    Duration *dur = &c->durations[d];
    dur->group = g;
    dur->error = *error;
    dur->known = known;
    dur->error_text = text;
    dur->next = c->groups[g].durations;
    c->groups[g].durations = d;
    new_hist(&dur->hist, c->acc->n_duration_bounds + 1);
    return &dur->hist;
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
    const uint8_t *d = s->found_data[slot];
    size_t n = s->found_len[slot];
    if (n >= 2 && d[0] == 0x0A && d[1] < 0x80 && (size_t)d[1] + 2 == n) { /* a string_value alone, as written */
        out->data = d + 2;
        out->len = d[1];
        return 0;
    }
    Value v;
    if (value_of(s, slot, &v) < 0) return -1;
    if (v.kind == V_STRING) {
        out->data = v.data;
        out->len = v.len;
    }
    return 0;
}

/* spanmetrics._token_count: a double as it is, an int as a double, else 0. */
static int token_count(const SpanFields *s, int slot, double *out) {
    Value v;
    if (value_of(s, slot, &v) < 0) return -1;
    *out = 0.0;
    if (v.kind == V_DOUBLE) memcpy(out, &v.scalar, sizeof *out);
    else if (v.kind == V_INT) *out = (double)(int64_t)v.scalar;
    return 0;
}

/* spanmetrics._cost_nano: the cost in nano-USD, rounded half to even as Python's
 * round(); *counted 0 when the value is no positive finite amount. */
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

static int is_agent_operation(const Accumulator *acc, const Slice *operation) {
    for (Py_ssize_t k = 0; k < acc->n_agent_ops; k++)
        if ((size_t)acc->agent_ops[k].len == operation->len &&
            memcmp(acc->agent_ops[k].data, operation->data, operation->len) == 0)
            return 1;
    return 0;
}

static int extra(Call *c, Py_ssize_t g, const SpanFields *s, int kinds_array) {
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
    return append_row(c->extras, item);
}

static int call_resource(SpanWalk *w, const uint8_t *resource_spans, size_t len) {
    return service_text(resource_spans, len, &((Call *)w)->service);
}

static int call_span(SpanWalk *w, const uint8_t *msg, size_t len, int ri, int si, int i) {
    Call *c = (Call *)w;
    const Accumulator *acc = c->acc;
    SpanFields s;
    if (read_span(msg, len, &acc->key_index, &s) < 0) return -1;
    if (!s.any) return 0;
    Slice label[N_LABELS];
    label[L_SERVICE] = c->service;
    if (s.found[S_TENANT] && c->read_tenant) {
        if (text_of(&s, S_TENANT, &label[L_TENANT]) < 0) return -1;
    } else {
        label[L_TENANT] = c->default_tenant;
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
    Py_ssize_t g = group_of(c, label);
    if (g < 0) return -1;
    if (genai) {
        if (c->internal_agent_usage || !is_agent_operation(acc, &label[L_OPERATION]) ||
            enum_value(s.kind) == SPAN_KIND_CLIENT) {
            for (int t = 0; t < 2; t++) {
                int slot = t == 0 ? S_INPUT : S_OUTPUT;
                if (!s.found[slot]) continue;
                double count;
                if (token_count(&s, slot, &count) < 0) return -1;
                Group *group = &c->groups[g];
                if (!group->has_tokens[t]) {
                    if (push(&c->token_order, &c->n_token_order, &c->cap_token_order, g * 2 + t) < 0) return -1;
                    group->has_tokens[t] = 1;
                    new_hist(&group->tokens[t], acc->n_token_bounds + 1);
                }
                if (observe(&group->tokens[t], acc->token_bounds, acc->n_token_bounds, count, &s) < 0) return -1;
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
            Hist *h = duration_hist(c, g, &error);
            if (h == NULL) return -1;
            double seconds = (double)(s.end - s.start) / 1e9;
            if (observe(h, acc->duration_bounds, acc->n_duration_bounds, seconds, &s) < 0) return -1;
        }
        if (s.found[S_COST]) {
            __int128 nano;
            int counted;
            if (cost_nano(&s, &nano, &counted) < 0) return -1;
            Group *group = &c->groups[g];
            if (counted) {
                if (!group->has_cost) {
                    if (push(&c->cost_order, &c->n_cost_order, &c->cap_cost_order, g) < 0) return -1;
                    group->has_cost = 1;
                }
                group->cost += nano;
                group->cost_spans++;
            }
        }
    }
    return has_extra ? extra(c, g, &s, kinds_array) : 0;
}

/* ---------------------------------------------------------------- the commit */

static void series_hist_clear(SeriesHist *h, Py_ssize_t n_buckets) {
    memset(h->counts, 0, (size_t)n_buckets * sizeof h->counts[0]);
    h->total = 0.0;
    h->count = 0;
}

static void series_hist_add(SeriesHist *to, const Hist *from, Py_ssize_t n_buckets) {
    for (Py_ssize_t b = 0; b < n_buckets; b++) to->counts[b] += from->counts[b];
    to->total += from->total;
    to->count += from->count;
    to->value = from->value;
    memcpy(to->trace_id, from->trace_id.data, from->trace_id.len);
    to->trace_id_len = from->trace_id.len;
    memcpy(to->span_id, from->span_id.data, from->span_id.len);
    to->span_id_len = from->span_id.len;
    to->end = from->end;
}

/* Reserves everything the commit adds, so that it cannot fail halfway. */
static int reserve(Accumulator *acc, const Call *c) {
    Py_ssize_t new_series = 0, new_durations = 0;
    for (Py_ssize_t g = 0; g < c->n_groups; g++) new_series += c->groups[g].series < 0;
    for (Py_ssize_t d = 0; d < c->n_durations; d++) new_durations += c->durations[d].known < 0;
    Py_ssize_t n = acc->n_series + new_series;
    size_t slots = acc->table.mask + 1;
    while ((size_t)n * 2 > slots) slots *= 2;
    if (slots != acc->table.mask + 1 &&
        table_resize(&acc->table, slots, acc->series, sizeof(Series), acc->n_series) < 0)
        return -1;
    return grow((void **)&acc->series, &acc->cap_series, n, sizeof(Series)) < 0 ||
                   grow((void **)&acc->durations, &acc->cap_durations, acc->n_durations + new_durations,
                        sizeof(SeriesDuration)) < 0 ||
                   grow((void **)&acc->token_order, &acc->cap_token_order, acc->n_token_order + c->n_token_order,
                        sizeof(Py_ssize_t)) < 0 ||
                   grow((void **)&acc->duration_order, &acc->cap_duration_order,
                        acc->n_duration_order + c->n_durations, sizeof(Py_ssize_t)) < 0 ||
                   grow((void **)&acc->cost_order, &acc->cap_cost_order, acc->n_cost_order + c->n_cost_order,
                        sizeof(Py_ssize_t)) < 0
               ? -1
               : 0;
}

/* A copy of the slices' bytes, one buffer; NULL with MemoryError. */
static uint8_t *own(Slice *slices, int n) {
    size_t total = 1;
    for (int i = 0; i < n; i++) total += slices[i].len;
    uint8_t *text = PyMem_Malloc(total), *p = text;
    if (text == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        memcpy(p, slices[i].data, slices[i].len);
        slices[i].data = p;
        p += slices[i].len;
    }
    return text;
}

/* Adds a call's sums to the accumulator: 0, or -1 with MemoryError before anything
 * changed. */
static int commit(Accumulator *acc, Call *c) {
    if (reserve(acc, c) < 0) return -1;
    /* Label copies first: the only other allocations. */
    uint8_t **texts = PyMem_Calloc((size_t)(c->n_groups + c->n_durations + 1), sizeof *texts);
    if (texts == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    Slice *labels = PyMem_Malloc((size_t)(c->n_groups + 1) * sizeof(Slice) * N_LABELS);
    Slice *errors = PyMem_Malloc((size_t)(c->n_durations + 1) * sizeof(Slice));
    int failed = labels == NULL || errors == NULL;
    for (Py_ssize_t g = 0; !failed && g < c->n_groups; g++) {
        if (c->groups[g].series >= 0) continue;
        memcpy(&labels[g * N_LABELS], c->groups[g].labels.label, sizeof(Slice) * N_LABELS);
        failed = (texts[g] = own(&labels[g * N_LABELS], N_LABELS)) == NULL;
    }
    for (Py_ssize_t d = 0; !failed && d < c->n_durations; d++) {
        if (c->durations[d].known >= 0) continue;
        errors[d] = c->durations[d].error;
        failed = (texts[c->n_groups + d] = own(&errors[d], 1)) == NULL;
    }
    if (failed) {
        for (Py_ssize_t t = 0; t < c->n_groups + c->n_durations; t++) PyMem_Free(texts[t]);
        PyMem_Free(texts);
        PyMem_Free(labels);
        PyMem_Free(errors);
        if (!PyErr_Occurred()) PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t g = 0; g < c->n_groups; g++) {
        Group *group = &c->groups[g];
        if (group->series >= 0) continue;
        Py_ssize_t s = acc->n_series++;
        Series *series = &acc->series[s];
        memcpy(series->labels.label, &labels[g * N_LABELS], sizeof series->labels.label);
        series->labels.hash = group->labels.hash;
        series->text = texts[g];
        series->base = group->base; /* stolen */
        group->base = NULL;
        series->has_tokens[0] = series->has_tokens[1] = 0;
        series->has_cost = 0;
        series->cost = 0;
        series->cost_spans = 0;
        series->durations = -1;
        size_t slot;
        table_find(&acc->table, acc->series, sizeof(Series), series->labels.label, series->labels.hash, &slot);
        acc->table.slots[slot] = s + 1; /* room reserved: no resize */
        group->series = s;
    }
    for (Py_ssize_t k = 0; k < c->n_token_order; k++) {
        const Group *group = &c->groups[c->token_order[k] / 2];
        int t = (int)(c->token_order[k] % 2);
        Series *series = &acc->series[group->series];
        if (!series->has_tokens[t]) {
            series->has_tokens[t] = 1;
            series_hist_clear(&series->tokens[t], acc->n_token_bounds + 1);
            acc->token_order[acc->n_token_order++] = group->series * 2 + t;
        }
        series_hist_add(&series->tokens[t], &group->tokens[t], acc->n_token_bounds + 1);
    }
    for (Py_ssize_t d = 0; d < c->n_durations; d++) {
        Duration *dur = &c->durations[d];
        Py_ssize_t s = c->groups[dur->group].series, known = dur->known;
        if (known < 0) {
            known = acc->n_durations++;
            SeriesDuration *sd = &acc->durations[known];
            sd->series = s;
            sd->error = errors[d];
            sd->text = texts[c->n_groups + d];
            sd->error_text = dur->error_text; /* stolen */
            dur->error_text = NULL;
            sd->active = 0;
            sd->next = acc->series[s].durations;
            acc->series[s].durations = known;
        }
        SeriesDuration *sd = &acc->durations[known];
        if (!sd->active) {
            sd->active = 1;
            series_hist_clear(&sd->hist, acc->n_duration_bounds + 1);
            acc->duration_order[acc->n_duration_order++] = known;
        }
        series_hist_add(&sd->hist, &dur->hist, acc->n_duration_bounds + 1);
    }
    for (Py_ssize_t k = 0; k < c->n_cost_order; k++) {
        const Group *group = &c->groups[c->cost_order[k]];
        Series *series = &acc->series[group->series];
        if (!series->has_cost) {
            series->has_cost = 1;
            acc->cost_order[acc->n_cost_order++] = group->series;
        }
        series->cost += group->cost;
        series->cost_spans += group->cost_spans;
    }
    /* The extras name their labels now that every group has its series. */
    for (Py_ssize_t e = 0; e < PyList_GET_SIZE(c->extras); e++) {
        PyObject *item = PyList_GET_ITEM(c->extras, e);
        Py_ssize_t g = PyLong_AsSsize_t(PyTuple_GET_ITEM(item, 0));
        PyObject *base = Py_NewRef(acc->series[c->groups[g].series].base);
        Py_SETREF(((PyTupleObject *)item)->ob_item[0], base);
    }
    PyMem_Free(texts);
    PyMem_Free(labels);
    PyMem_Free(errors);
    return 0;
}

static void call_release(Call *c) {
    for (Py_ssize_t g = 0; g < c->n_groups; g++) Py_XDECREF(c->groups[g].base);
    for (Py_ssize_t d = 0; d < c->n_durations; d++) Py_XDECREF(c->durations[d].error_text);
    PyMem_Free(c->groups);
    PyMem_Free(c->durations);
    PyMem_Free(c->table.slots);
    PyMem_Free(c->token_order);
    PyMem_Free(c->cost_order);
    Py_XDECREF(c->extras);
    Py_XDECREF(c->walk.out);
}

/* ------------------------------------------------------------------- methods */

static PyObject *acc_add(Accumulator *acc, PyObject *args) {
    PyObject *requests, *tenant, *out = NULL;
    int read_tenant, internal_agent_usage;
    if (!PyArg_ParseTuple(args, "O!Upp:add", &PyTuple_Type, &requests, &tenant, &read_tenant, &internal_agent_usage))
        return NULL;
    Call c;
    memset(&c, 0, sizeof c);
    c.walk = (SpanWalk){call_resource, call_span, no_end_resource, NULL};
    c.acc = acc;
    c.read_tenant = read_tenant;
    c.internal_agent_usage = internal_agent_usage;
    Py_ssize_t tenant_len;
    c.default_tenant.data = (const uint8_t *)PyUnicode_AsUTF8AndSize(tenant, &tenant_len);
    c.default_tenant.len = (size_t)tenant_len;
    if (c.default_tenant.data == NULL) goto done;
    c.extras = PyList_New(0);
    if (c.extras == NULL || table_resize(&c.table, 64, NULL, sizeof(Group), 0) < 0) goto done;
    /* The pieces' concatenation is their merged request: walked piece by piece. */
    for (Py_ssize_t r = 0; r < PyTuple_GET_SIZE(requests); r++) {
        Py_buffer request;
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(requests, r), &request, PyBUF_SIMPLE) < 0) goto done;
        PyObject *rows = walk(&request, &c.walk); /* collects no rows: an empty list */
        PyBuffer_Release(&request);
        if (rows == NULL) goto done;
        Py_CLEAR(c.walk.out);
    }
    /* Holding the buffers is not needed past here: the commit copies what it keeps. */
    if (commit(acc, &c) < 0) goto done;
    out = Py_NewRef(c.extras);
done:
    call_release(&c);
    return out;
}

static PyObject *series_hist_acc(const SeriesHist *h, Py_ssize_t n_bounds) {
    PyObject *counts = PyList_New(n_bounds + 1);
    if (counts == NULL) return NULL;
    for (Py_ssize_t b = 0; b <= n_bounds; b++) {
        PyObject *n = PyLong_FromLongLong(h->counts[b]);
        if (n == NULL) {
            Py_DECREF(counts);
            return NULL;
        }
        PyList_SET_ITEM(counts, b, n);
    }
    return Py_BuildValue("[NdLdy#y#K]", counts, h->total, (long long)h->count, h->value,
                         (const char *)h->trace_id, (Py_ssize_t)h->trace_id_len, (const char *)h->span_id,
                         (Py_ssize_t)h->span_id_len, (unsigned long long)h->end);
}

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

static PyObject *acc_drain(Accumulator *acc, PyObject *unused) {
    PyObject *tokens = PyDict_New(), *duration = PyDict_New(), *cost = PyDict_New(), *cost_spans = PyDict_New();
    PyObject *types[2] = {PyUnicode_FromString("input"), PyUnicode_FromString("output")};
    PyObject *out = NULL;
    if (!tokens || !duration || !cost || !cost_spans || !types[0] || !types[1]) goto done;
    for (Py_ssize_t k = 0; k < acc->n_token_order; k++) {
        const Series *series = &acc->series[acc->token_order[k] / 2];
        int t = (int)(acc->token_order[k] % 2);
        PyObject *key = key_with(series->base, types[t]);
        if (set_new(tokens, key, series_hist_acc(&series->tokens[t], acc->n_token_bounds)) < 0) goto done;
    }
    for (Py_ssize_t k = 0; k < acc->n_duration_order; k++) {
        const SeriesDuration *sd = &acc->durations[acc->duration_order[k]];
        PyObject *key = key_with(acc->series[sd->series].base, sd->error_text);
        if (set_new(duration, key, series_hist_acc(&sd->hist, acc->n_duration_bounds)) < 0) goto done;
    }
    for (Py_ssize_t k = 0; k < acc->n_cost_order; k++) {
        const Series *series = &acc->series[acc->cost_order[k]];
        if (set_new(cost, Py_NewRef(series->base), int128(series->cost)) < 0 ||
            set_new(cost_spans, Py_NewRef(series->base), PyLong_FromLongLong(series->cost_spans)) < 0)
            goto done;
    }
    out = PyTuple_Pack(4, tokens, duration, cost, cost_spans);
    if (out == NULL) goto done;
    for (Py_ssize_t k = 0; k < acc->n_token_order; k++)
        acc->series[acc->token_order[k] / 2].has_tokens[acc->token_order[k] % 2] = 0;
    for (Py_ssize_t k = 0; k < acc->n_duration_order; k++) acc->durations[acc->duration_order[k]].active = 0;
    for (Py_ssize_t k = 0; k < acc->n_cost_order; k++) {
        Series *series = &acc->series[acc->cost_order[k]];
        series->has_cost = 0;
        series->cost = 0;
        series->cost_spans = 0;
    }
    acc->n_token_order = acc->n_duration_order = acc->n_cost_order = 0;
done:
    Py_XDECREF(tokens);
    Py_XDECREF(duration);
    Py_XDECREF(cost);
    Py_XDECREF(cost_spans);
    Py_XDECREF(types[0]);
    Py_XDECREF(types[1]);
    return out;
}

static void forget(Accumulator *acc) {
    for (Py_ssize_t s = 0; s < acc->n_series; s++) {
        Py_DECREF(acc->series[s].base);
        PyMem_Free(acc->series[s].text);
    }
    for (Py_ssize_t d = 0; d < acc->n_durations; d++) {
        Py_DECREF(acc->durations[d].error_text);
        PyMem_Free(acc->durations[d].text);
    }
    acc->n_series = acc->n_durations = 0;
    acc->n_token_order = acc->n_duration_order = acc->n_cost_order = 0;
    if (acc->table.slots != NULL) memset(acc->table.slots, 0, (acc->table.mask + 1) * sizeof *acc->table.slots);
}

static PyObject *acc_clear(Accumulator *acc, PyObject *unused) {
    forget(acc);
    Py_RETURN_NONE;
}

static PyObject *acc_series_count(Accumulator *acc, PyObject *unused) { return PyLong_FromSsize_t(acc->n_series); }

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

static int acc_init(Accumulator *acc, PyObject *args, PyObject *kwargs) {
    PyObject *key_tuple, *agent_tuple, *token_tuple, *duration_tuple;
    if (!PyArg_ParseTuple(args, "O!O!O!O!:Accumulator", &PyTuple_Type, &key_tuple, &PyTuple_Type, &agent_tuple,
                          &PyTuple_Type, &token_tuple, &PyTuple_Type, &duration_tuple))
        return -1;
    if (acc->key_tuple != NULL) {
        PyErr_SetString(PyExc_TypeError, "Accumulator is initialized once");
        return -1;
    }
    if (PyTuple_GET_SIZE(key_tuple) != N_SLOTS) {
        PyErr_Format(PyExc_TypeError, "%d keys expected", N_SLOTS);
        return -1;
    }
    if (PyTuple_GET_SIZE(agent_tuple) > MAX_AGENT_OPERATIONS) {
        PyErr_Format(PyExc_TypeError, "at most %d agent operations", MAX_AGENT_OPERATIONS);
        return -1;
    }
    Py_ssize_t n_keys;
    if (parse_keys(key_tuple, acc->keys, &n_keys) < 0 ||
        parse_keys(agent_tuple, acc->agent_ops, &acc->n_agent_ops) < 0 ||
        parse_bounds(token_tuple, acc->token_bounds, &acc->n_token_bounds) < 0 ||
        parse_bounds(duration_tuple, acc->duration_bounds, &acc->n_duration_bounds) < 0 ||
        table_resize(&acc->table, 64, NULL, sizeof(Series), 0) < 0)
        return -1;
    index_keys(&acc->key_index, acc->keys, n_keys);
    acc->key_tuple = Py_NewRef(key_tuple);
    acc->agent_tuple = Py_NewRef(agent_tuple);
    return 0;
}

static void acc_dealloc(Accumulator *acc) {
    forget(acc);
    PyMem_Free(acc->series);
    PyMem_Free(acc->durations);
    PyMem_Free(acc->table.slots);
    PyMem_Free(acc->token_order);
    PyMem_Free(acc->duration_order);
    PyMem_Free(acc->cost_order);
    Py_XDECREF(acc->key_tuple);
    Py_XDECREF(acc->agent_tuple);
    Py_TYPE(acc)->tp_free((PyObject *)acc);
}

static PyObject *acc_ready(Accumulator *acc) {
    if (acc->key_tuple == NULL) PyErr_SetString(PyExc_TypeError, "Accumulator.__init__ was not called");
    return acc->key_tuple;
}

static PyObject *acc_add_checked(PyObject *self, PyObject *args) {
    return acc_ready((Accumulator *)self) ? acc_add((Accumulator *)self, args) : NULL;
}

static PyObject *acc_drain_checked(PyObject *self, PyObject *unused) {
    return acc_ready((Accumulator *)self) ? acc_drain((Accumulator *)self, unused) : NULL;
}

static PyMethodDef acc_methods[] = {
    {"add", acc_add_checked, METH_VARARGS,
     "add(requests, default_tenant, read_tenant, internal_agent_usage) -> extras\n\n"
     "Sums serialized ExportTraceServiceRequests (a tuple, read as their merge)."},
    {"drain", acc_drain_checked, METH_NOARGS,
     "drain() -> (tokens, duration, cost, cost_spans): the sums since the last drain."},
    {"series_count", (PyCFunction)acc_series_count, METH_NOARGS, "Label sets remembered."},
    {"clear", (PyCFunction)acc_clear, METH_NOARGS, "Forgets every label set and sum."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject AccumulatorType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "exporters.prometheus._spanmetrics.Accumulator",
    .tp_basicsize = sizeof(Accumulator),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Span-derived GenAI metrics summed from serialized requests until drained.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)acc_init,
    .tp_dealloc = (destructor)acc_dealloc,
    .tp_methods = acc_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_spanmetrics", "Span-derived GenAI metrics summed from serialized OTLP requests.", -1,
    NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__spanmetrics(void) {
    if (PyType_Ready(&AccumulatorType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddObjectRef(m, "Accumulator", (PyObject *)&AccumulatorType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
