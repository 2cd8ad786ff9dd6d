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
 * .submit(token, requests, default_tenant, read_tenant, internal_agent_usage) -> results
 *   The same sum, the walk done by the accumulator's worker thread without the GIL: the
 *   caller's thread (the receiver's event loop, which runs everything else in Python)
 *   only hands the bytes over. Returns the results of the submitted calls walked by now,
 *   in submission order: (token, extras), extras None for a declined call (nothing
 *   summed: the caller sums it in Python). The worker starts once 8 calls wait (or a
 *   caller waits for one). Waits (without the GIL) only when 64 calls are in flight.
 *   The sums of a call enter the accumulator when its result is returned.
 * .finish() -> results: waits for every submitted call; .pending(): calls not returned.
 *   add() refuses to run while submitted calls are pending (their sums come first).
 * .drain() -> (tokens, duration, cost, cost_spans)
 *   The sums since the last drain as BatchAggregate's dicts, their keys in the order the
 *   Python loop would insert them; a histogram accumulator is [bucket counts, sum,
 *   count, last value, its trace id, its span id, its end ns].
 * .series_count(), .clear(): label sets remembered, and forgetting them.
 *
 * Why a thread of its own: the walk is ~0.2 us per span, 20-30 us per 100-span request,
 * on the one thread that holds the GIL for the whole receiver; on another core it costs
 * that thread ~5 us per request (handing over, matching label sets, adding the sums).
 * The calls of one accumulator must not overlap (the exporter holds a lock around them).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

/* The walk runs on the worker thread without the GIL: it records what went wrong here
 * (per thread) instead of raising. */
static _Thread_local const char *walk_error;
#define WALK_ERROR(message) (walk_error = (message))

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
    Py_ssize_t *fresh = PyMem_RawCalloc(slots, sizeof *fresh);
    if (fresh == NULL) return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        size_t at = (size_t)labels_at(items, stride, i)->hash & (slots - 1);
        while (fresh[at]) at = (at + 1) & (slots - 1);
        fresh[at] = i + 1;
    }
    PyMem_RawFree(t->slots);
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

/* The allocation helpers (table_resize, table_put, grow, push) use the raw allocator,
 * which needs no GIL, and set no exception: -1 when out of memory. */
static int grow(void **items, Py_ssize_t *cap, Py_ssize_t need, size_t size) {
    if (need <= *cap) return 0;
    Py_ssize_t n = *cap ? *cap * 2 : 16;
    while (n < need) n *= 2;
    void *grown = PyMem_RawRealloc(*items, (size_t)n * size);
    if (grown == NULL) return -1;
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

typedef struct Accumulator Accumulator;

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

/* The worker's queue: requests submitted, walked in order, collected in order. */
#define RING 64
/* The worker is woken once this many jobs wait, or when a caller waits for one (a scrape,
 * a drain, a full ring): waking it per request cost ~7 us of its CPU per 100-span request
 * (42-46 -> 36-38 us measured under wrk), for sums nobody reads before a scrape. A drain
 * (once a second) may then wait for up to 7 walks, ~0.3 ms, with the GIL released. */
#define WAKE_AFTER 8

typedef struct Job Job;

struct Accumulator {
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

    /* The worker thread walks submitted requests without the GIL: ring[head, ran) are
     * walked, ring[ran, tail) wait. `ran`, `tail`, `hurry` and `closing` are shared
     * (under `lock`); the rest is the GIL holder's. */
    int sync_ready, closing, busy;
    int hurry; /* a caller waits: walk what is queued without waiting for WAKE_AFTER jobs */
    pid_t worker_pid; /* the process that started the worker; 0 when none */
    pthread_t worker;
    pthread_mutex_t lock;
    pthread_cond_t work, walked;
    Job *ring[RING];
    uint64_t head, ran, tail;
};

/* --------------------------------------------------------- one call's sums */

/* A call is summed in two steps. The walk reads the request's bytes and the accumulator's
 * fixed configuration (keys, bounds, agent operations) only, and makes no Python object:
 * it runs on the worker thread without the GIL. `resolve` and `commit` then match the
 * call's label sets with the accumulator's series and add the sums, with the GIL. */

typedef struct {
    int64_t counts[MAX_BOUNDS + 1];
    double total, value;
    int64_t count;
    Slice trace_id, span_id; /* into the request */
    uint64_t end;
} Hist;

typedef struct {
    Labels labels; /* slices into the request (or the call's default tenant) */
    Py_ssize_t series; /* the accumulator's, -1 when new (set by resolve) */
    PyObject *base;    /* a new series' label tuple (made by resolve) */
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
    Py_ssize_t known; /* the accumulator's SeriesDuration, -1 when new (set by resolve) */
    PyObject *error_text; /* a new one's (made by resolve) */
    Hist hist;
} Duration;

/* A span with anomaly kinds or pii types: its group and the raw values Python counts. */
enum { N_EXTRA = 4 };
static const int EXTRA_SLOTS[N_EXTRA] = {S_KINDS, S_PII_TYPES, S_PII_COUNT, S_PII_COUNTS};

typedef struct {
    Py_ssize_t group;
    int found[N_EXTRA];
    Slice value[N_EXTRA]; /* AnyValue bytes, into the request */
} Extra;

typedef struct {
    SpanWalk walk;
    const Accumulator *acc; /* its configuration only */
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
    Extra *extras;
    Py_ssize_t n_extras, cap_extras;
} Call;

/* For the walk's allocation failures: the call is declined (Python sums it, and raises
 * MemoryError itself if memory is really out). */
static int out_of_memory(void) {
    WALK_ERROR("out of memory");
    return -1;
}

/* The index of the call's group of these labels, created when new; -1 with WALK_ERROR. */
static Py_ssize_t group_of(Call *c, const Slice *label) {
    uint64_t h = hash_labels(label);
    size_t slot;
    Py_ssize_t g = table_find(&c->table, c->groups, sizeof(Group), label, h, &slot);
    if (g >= 0) return g;
    if (grow((void **)&c->groups, &c->cap_groups, c->n_groups + 1, sizeof(Group)) < 0) return out_of_memory();
    g = c->n_groups++;
    Group *group = &c->groups[g];
    memcpy(group->labels.label, label, sizeof group->labels.label);
    group->labels.hash = h;
    group->series = -1;
    group->base = NULL;
    group->has_tokens[0] = group->has_tokens[1] = 0;
    group->has_cost = 0;
    group->cost = 0;
    group->cost_spans = 0;
    group->durations = -1;
    if (table_put(&c->table, slot, g, c->groups, sizeof(Group), c->n_groups) < 0) return out_of_memory();
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
        WALK_ERROR("an id longer than 32 bytes");
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
    if (grow((void **)&c->durations, &c->cap_durations, c->n_durations + 1, sizeof(Duration)) < 0) {
        out_of_memory();
        return NULL;
    }
    d = c->n_durations++;
    Duration *dur = &c->durations[d];
    dur->group = g;
    dur->error = *error;
    dur->known = -1;
    dur->error_text = NULL;
    dur->next = c->groups[g].durations;
    c->groups[g].durations = d;
    new_hist(&dur->hist, c->acc->n_duration_bounds + 1);
    return &dur->hist;
}

/* A found value; -1 with WALK_ERROR when malformed. */
static int value_of(const SpanFields *s, int slot, Value *v) {
    if (parse_value(s->found_data[slot], s->found_len[slot], v) < 0) {
        WALK_ERROR("malformed AnyValue");
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
                WALK_ERROR("a cost too large to sum here");
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

/* Records a span's anomaly kinds (when an array) and pii values for Python to count. */
static int extra(Call *c, Py_ssize_t g, const SpanFields *s, int kinds_array) {
    if (grow((void **)&c->extras, &c->cap_extras, c->n_extras + 1, sizeof(Extra)) < 0) return out_of_memory();
    Extra *e = &c->extras[c->n_extras++];
    e->group = g;
    for (int k = 0; k < N_EXTRA; k++) {
        int slot = EXTRA_SLOTS[k];
        e->found[k] = s->found[slot] && (slot != S_KINDS || kinds_array);
        e->value[k] = e->found[k] ? (Slice){s->found_data[slot], s->found_len[slot]} : (Slice){NULL, 0};
    }
    return 0;
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
                    if (push(&c->token_order, &c->n_token_order, &c->cap_token_order, g * 2 + t) < 0)
                        return out_of_memory();
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
                    if (push(&c->cost_order, &c->n_cost_order, &c->cap_cost_order, g) < 0) return out_of_memory();
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
        table_resize(&acc->table, slots, acc->series, sizeof(Series), acc->n_series) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    int failed = grow((void **)&acc->series, &acc->cap_series, n, sizeof(Series)) < 0 ||
                   grow((void **)&acc->durations, &acc->cap_durations, acc->n_durations + new_durations,
                        sizeof(SeriesDuration)) < 0 ||
                   grow((void **)&acc->token_order, &acc->cap_token_order, acc->n_token_order + c->n_token_order,
                        sizeof(Py_ssize_t)) < 0 ||
                   grow((void **)&acc->duration_order, &acc->cap_duration_order,
                        acc->n_duration_order + c->n_durations, sizeof(Py_ssize_t)) < 0 ||
                   grow((void **)&acc->cost_order, &acc->cap_cost_order, acc->n_cost_order + c->n_cost_order,
                        sizeof(Py_ssize_t)) < 0;
    if (failed) PyErr_NoMemory();
    return failed ? -1 : 0;
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

/* Adds a resolved call's sums to the accumulator and names the extras' labels: 0, or -1
 * with MemoryError before anything changed. */
static int commit(Accumulator *acc, Call *c, PyObject *extras) {
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
    for (Py_ssize_t e = 0; e < PyList_GET_SIZE(extras); e++) {
        PyObject *item = PyList_GET_ITEM(extras, e);
        Py_ssize_t g = PyLong_AsSsize_t(PyTuple_GET_ITEM(item, 0));
        PyObject *base = Py_NewRef(acc->series[c->groups[g].series].base);
        Py_SETREF(((PyTupleObject *)item)->ob_item[0], base);
    }
    PyMem_Free(texts);
    PyMem_Free(labels);
    PyMem_Free(errors);
    return 0;
}

/* The call's groups and durations matched with the accumulator's series, and the label
 * texts of new ones made (which validates them): 0, or -1 with ValueError when a label
 * is not UTF-8. */
static int resolve(Accumulator *acc, Call *c) {
    for (Py_ssize_t g = 0; g < c->n_groups; g++) {
        Group *group = &c->groups[g];
        size_t slot;
        group->series = table_find(&acc->table, acc->series, sizeof(Series), group->labels.label,
                                   group->labels.hash, &slot);
        if (group->series >= 0 || group->base != NULL) continue;
        PyObject *base = PyTuple_New(N_LABELS);
        if (base == NULL) return -1;
        for (int l = 0; l < N_LABELS; l++) {
            PyObject *text = label_text(&group->labels.label[l]);
            if (text == NULL) {
                Py_DECREF(base);
                return -1;
            }
            PyTuple_SET_ITEM(base, l, text);
        }
        group->base = base;
    }
    for (Py_ssize_t d = 0; d < c->n_durations; d++) {
        Duration *dur = &c->durations[d];
        Py_ssize_t series = c->groups[dur->group].series, known = -1;
        if (series >= 0)
            for (known = acc->series[series].durations; known >= 0; known = acc->durations[known].next)
                if (same_slice(&acc->durations[known].error, &dur->error)) break;
        dur->known = known;
        if (known < 0 && dur->error_text == NULL && (dur->error_text = label_text(&dur->error)) == NULL) return -1;
    }
    return 0;
}

/* The extras as Python values: (group index, kinds, pii types, pii count, pii counts),
 * the index replaced by the labels at the commit. */
static PyObject *extras_list(const Call *c) {
    PyObject *list = PyList_New(c->n_extras);
    if (list == NULL) return NULL;
    for (Py_ssize_t e = 0; e < c->n_extras; e++) {
        const Extra *x = &c->extras[e];
        PyObject *item = PyTuple_New(N_EXTRA + 1);
        PyObject *index = PyLong_FromSsize_t(x->group);
        if (item == NULL || index == NULL) {
            Py_XDECREF(item);
            Py_XDECREF(index);
            Py_DECREF(list);
            return NULL;
        }
        PyTuple_SET_ITEM(item, 0, index);
        PyList_SET_ITEM(list, e, item);
        for (int k = 0; k < N_EXTRA; k++) {
            PyObject *v = x->found[k] ? convert(x->value[k].data, x->value[k].len, 0) : Py_NewRef(Py_None);
            if (v == NULL) {
                Py_DECREF(list);
                return NULL;
            }
            PyTuple_SET_ITEM(item, k + 1, v);
        }
    }
    return list;
}

/* A walked call added to the accumulator: its extras, or NULL with an exception set and
 * the accumulator unchanged. */
static PyObject *sum_call(Accumulator *acc, Call *c) {
    if (resolve(acc, c) < 0) return NULL;
    PyObject *extras = extras_list(c);
    if (extras != NULL && commit(acc, c, extras) < 0) Py_CLEAR(extras);
    return extras;
}

static void call_release(Call *c) {
    for (Py_ssize_t g = 0; g < c->n_groups; g++) Py_XDECREF(c->groups[g].base);
    for (Py_ssize_t d = 0; d < c->n_durations; d++) Py_XDECREF(c->durations[d].error_text);
    PyMem_RawFree(c->groups);
    PyMem_RawFree(c->durations);
    PyMem_RawFree(c->table.slots);
    PyMem_RawFree(c->token_order);
    PyMem_RawFree(c->cost_order);
    PyMem_RawFree(c->extras);
}

/* ----------------------------------------------------------------------- jobs */

struct Job {
    PyObject *token, *requests; /* owned */
    Py_buffer *views;           /* one per request, held until the job is collected */
    Py_ssize_t n_views;
    uint8_t *tenant; /* the default tenant's UTF-8, copied */
    size_t tenant_len;
    int read_tenant, internal_agent_usage;
    Call call;
    const char *error; /* why the walk declined the requests, NULL when it did not */
};

static void free_job(Job *job) {
    call_release(&job->call);
    for (Py_ssize_t v = 0; v < job->n_views; v++) PyBuffer_Release(&job->views[v]);
    PyMem_RawFree(job->views);
    PyMem_RawFree(job->tenant);
    Py_XDECREF(job->token);
    Py_XDECREF(job->requests);
    PyMem_RawFree(job);
}

/* A job holding the requests' buffers; NULL with an exception set. */
static Job *new_job(PyObject *token, PyObject *requests, PyObject *tenant, int read_tenant, int internal_agent_usage) {
    Py_ssize_t tenant_len, n = PyTuple_GET_SIZE(requests);
    const char *tenant_text = PyUnicode_AsUTF8AndSize(tenant, &tenant_len);
    if (tenant_text == NULL) return NULL;
    Job *job = PyMem_RawCalloc(1, sizeof *job);
    if (job == NULL || (job->views = PyMem_RawCalloc((size_t)n + 1, sizeof(Py_buffer))) == NULL ||
        (job->tenant = PyMem_RawMalloc((size_t)tenant_len + 1)) == NULL) {
        if (job != NULL) free_job(job);
        PyErr_NoMemory();
        return NULL;
    }
    memcpy(job->tenant, tenant_text, (size_t)tenant_len);
    job->tenant_len = (size_t)tenant_len;
    job->read_tenant = read_tenant;
    job->internal_agent_usage = internal_agent_usage;
    job->token = Py_NewRef(token);
    job->requests = Py_NewRef(requests);
    for (; job->n_views < n; job->n_views++)
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(requests, job->n_views), &job->views[job->n_views], PyBUF_SIMPLE) <
            0) {
            free_job(job);
            return NULL;
        }
    return job;
}

/* The walk of a job's requests (their concatenation is their merged request: walked
 * piece by piece). Needs no GIL: reads the job and the accumulator's configuration. */
static void walk_job(const Accumulator *acc, Job *job) {
    Call *c = &job->call;
    memset(c, 0, sizeof *c);
    c->walk = (SpanWalk){call_resource, call_span, no_end_resource, NULL};
    c->acc = acc;
    c->default_tenant = (Slice){job->tenant, job->tenant_len};
    c->read_tenant = job->read_tenant;
    c->internal_agent_usage = job->internal_agent_usage;
    walk_error = NULL;
    int rc = table_resize(&c->table, 64, NULL, sizeof(Group), 0) < 0 ? out_of_memory() : 0;
    for (Py_ssize_t v = 0; rc == 0 && v < job->n_views; v++)
        rc = walk_request((const uint8_t *)job->views[v].buf, (size_t)job->views[v].len, &c->walk);
    job->error = rc == 0 ? NULL : walk_error != NULL ? walk_error : "malformed request";
}

static void *worker_main(void *arg) {
    Accumulator *acc = arg;
#ifdef __linux__
    pthread_setname_np(pthread_self(), "spanmetrics"); /* as ps and /proc show it */
#endif
    pthread_mutex_lock(&acc->lock);
    for (;;) {
        while (!acc->closing && acc->tail - acc->ran < WAKE_AFTER && !(acc->hurry && acc->ran < acc->tail))
            pthread_cond_wait(&acc->work, &acc->lock);
        if (acc->closing) break;
        Job *job = acc->ring[acc->ran % RING];
        pthread_mutex_unlock(&acc->lock);
        walk_job(acc, job);
        pthread_mutex_lock(&acc->lock);
        acc->ran++;
        if (acc->ran == acc->tail) acc->hurry = 0;
        pthread_cond_broadcast(&acc->walked);
    }
    pthread_mutex_unlock(&acc->lock);
    return NULL;
}

/* In a forked child the worker stayed in the parent: the jobs it had not walked are
 * walked here, and a worker of its own starts at the next submit. */
static void adopt_after_fork(Accumulator *acc) {
    if (acc->worker_pid == 0 || acc->worker_pid == getpid()) return;
    /* The fork may have happened with the lock held by the parent's worker. */
    pthread_mutex_init(&acc->lock, NULL);
    pthread_cond_init(&acc->work, NULL);
    pthread_cond_init(&acc->walked, NULL);
    for (uint64_t i = acc->ran; i < acc->tail; i++) {
        Job *job = acc->ring[i % RING];
        if (i == acc->ran) call_release(&job->call); /* it may have been half walked */
        walk_job(acc, job);
    }
    acc->ran = acc->tail;
    acc->hurry = 0;
    acc->worker_pid = 0;
}

/* A worker for this process, started on first use: 0, or -1 when no thread could be
 * started (the caller then walks the job itself). */
static int ensure_worker(Accumulator *acc) {
    adopt_after_fork(acc);
    if (acc->worker_pid != 0) return 0;
    acc->closing = 0;
    if (pthread_create(&acc->worker, NULL, worker_main, acc) != 0) return -1;
    acc->worker_pid = getpid();
    return 0;
}

/* How many jobs are walked, once at least `target` are. Waits without the GIL, and only
 * when it must wait: releasing the GIL lets other Python threads run first. The lock is
 * taken with the GIL held otherwise (the worker holds it only briefly, never the GIL). */
static uint64_t walked_up_to(Accumulator *acc, uint64_t target) {
    adopt_after_fork(acc);
    if (acc->worker_pid == 0) return acc->ran; /* no worker: every job was walked in line */
    pthread_mutex_lock(&acc->lock);
    uint64_t ran = acc->ran;
    pthread_mutex_unlock(&acc->lock);
    if (ran >= target) return ran;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&acc->lock);
    acc->hurry = 1; /* the worker may be waiting for WAKE_AFTER jobs */
    pthread_cond_signal(&acc->work);
    while (acc->ran < target) pthread_cond_wait(&acc->walked, &acc->lock);
    ran = acc->ran;
    pthread_mutex_unlock(&acc->lock);
    Py_END_ALLOW_THREADS
    return ran;
}

/* The head job summed (or declined) and appended to `out` as (token, extras or None):
 * None when the walk or the UTF-8 check declined it; the caller sums it in Python. */
static int collect_head(Accumulator *acc, PyObject *out) {
    Job *job = acc->ring[acc->head % RING];
    acc->ring[acc->head % RING] = NULL;
    acc->head++;
    PyObject *extras = NULL;
    if (job->error == NULL && (extras = sum_call(acc, &job->call)) == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_ValueError)) {
            free_job(job);
            return -1;
        }
        PyErr_Clear();
    }
    PyObject *result = PyTuple_Pack(2, job->token, extras != NULL ? extras : Py_None);
    Py_XDECREF(extras);
    free_job(job);
    return append_row(out, result);
}

/* Collects the walked jobs (every submitted one when `wait` is set) into a new list. */
static PyObject *collect(Accumulator *acc, int wait) {
    PyObject *out = PyList_New(0);
    if (out == NULL) return NULL;
    uint64_t ran = wait ? walked_up_to(acc, acc->tail) : walked_up_to(acc, 0);
    while (acc->head < ran)
        if (collect_head(acc, out) < 0) {
            Py_DECREF(out);
            return NULL;
        }
    return out;
}

/* Calls that wait without the GIL must not interleave: the Python caller holds a lock. */
static int enter(Accumulator *acc) {
    if (acc->busy) {
        PyErr_SetString(PyExc_RuntimeError, "Accumulator used from two threads at once");
        return -1;
    }
    acc->busy = 1;
    return 0;
}

/* ------------------------------------------------------------------- methods */

static PyObject *acc_submit(Accumulator *acc, PyObject *args) {
    PyObject *token, *requests, *tenant;
    int read_tenant, internal_agent_usage;
    if (!PyArg_ParseTuple(args, "OO!Upp:submit", &token, &PyTuple_Type, &requests, &tenant, &read_tenant,
                          &internal_agent_usage))
        return NULL;
    if (enter(acc) < 0) return NULL;
    PyObject *out = NULL;
    Job *job = new_job(token, requests, tenant, read_tenant, internal_agent_usage);
    if (job == NULL) goto done;
    out = PyList_New(0);
    if (out == NULL) {
        free_job(job);
        goto done;
    }
    /* Room: the ring is freed only by collecting, in order. */
    while (acc->tail - acc->head == RING) {
        walked_up_to(acc, acc->head + 1);
        if (collect_head(acc, out) < 0) {
            free_job(job);
            Py_CLEAR(out);
            goto done;
        }
    }
    acc->ring[acc->tail % RING] = job;
    if (ensure_worker(acc) == 0) {
        pthread_mutex_lock(&acc->lock);
        acc->tail++;
        if (acc->tail - acc->ran >= WAKE_AFTER) pthread_cond_signal(&acc->work);
        pthread_mutex_unlock(&acc->lock);
    } else { /* no thread: walked here */
        walk_job(acc, job);
        acc->tail++;
        acc->ran = acc->tail;
    }
    PyObject *walked = collect(acc, 0);
    if (walked == NULL || PyList_SetSlice(out, PyList_GET_SIZE(out), PyList_GET_SIZE(out), walked) < 0) Py_CLEAR(out);
    Py_XDECREF(walked);
done:
    acc->busy = 0;
    return out;
}

static PyObject *acc_finish(Accumulator *acc, PyObject *unused) {
    if (enter(acc) < 0) return NULL;
    PyObject *out = collect(acc, 1);
    acc->busy = 0;
    return out;
}

static PyObject *acc_pending(Accumulator *acc, PyObject *unused) {
    return PyLong_FromUnsignedLongLong(acc->tail - acc->head);
}

static PyObject *acc_add(Accumulator *acc, PyObject *args) {
    PyObject *requests, *tenant, *out = NULL;
    int read_tenant, internal_agent_usage;
    if (!PyArg_ParseTuple(args, "O!Upp:add", &PyTuple_Type, &requests, &tenant, &read_tenant, &internal_agent_usage))
        return NULL;
    if (acc->tail != acc->head) { /* its sums would come before theirs */
        PyErr_SetString(PyExc_RuntimeError, "add() with submitted requests not finished");
        return NULL;
    }
    Job *job = new_job(Py_None, requests, tenant, read_tenant, internal_agent_usage);
    if (job == NULL) return NULL;
    walk_job(acc, job);
    if (job->error != NULL) PyErr_SetString(PyExc_ValueError, job->error);
    else out = sum_call(acc, &job->call);
    free_job(job);
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
        parse_bounds(duration_tuple, acc->duration_bounds, &acc->n_duration_bounds) < 0)
        return -1;
    if (table_resize(&acc->table, 64, NULL, sizeof(Series), 0) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    if (pthread_mutex_init(&acc->lock, NULL) != 0 || pthread_cond_init(&acc->work, NULL) != 0 ||
        pthread_cond_init(&acc->walked, NULL) != 0) {
        PyErr_SetString(PyExc_OSError, "Accumulator: cannot make its lock");
        return -1;
    }
    acc->sync_ready = 1;
    index_keys(&acc->key_index, acc->keys, n_keys);
    acc->key_tuple = Py_NewRef(key_tuple);
    acc->agent_tuple = Py_NewRef(agent_tuple);
    return 0;
}

static void acc_dealloc(Accumulator *acc) {
    if (acc->worker_pid == getpid()) {
        /* The worker holds no Python object and never takes the GIL: joined with it held. */
        pthread_mutex_lock(&acc->lock);
        acc->closing = 1;
        pthread_cond_signal(&acc->work);
        pthread_mutex_unlock(&acc->lock);
        pthread_join(acc->worker, NULL);
    }
    for (uint64_t i = acc->head; i < acc->tail; i++) free_job(acc->ring[i % RING]);
    /* In a forked child that never used it, the lock is the parent's copy, perhaps held:
     * not destroyed. */
    if (acc->sync_ready && (acc->worker_pid == 0 || acc->worker_pid == getpid())) {
        pthread_mutex_destroy(&acc->lock);
        pthread_cond_destroy(&acc->work);
        pthread_cond_destroy(&acc->walked);
    }
    forget(acc);
    PyMem_RawFree(acc->series);
    PyMem_RawFree(acc->durations);
    PyMem_RawFree(acc->table.slots);
    PyMem_RawFree(acc->token_order);
    PyMem_RawFree(acc->duration_order);
    PyMem_RawFree(acc->cost_order);
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

static PyObject *acc_submit_checked(PyObject *self, PyObject *args) {
    return acc_ready((Accumulator *)self) ? acc_submit((Accumulator *)self, args) : NULL;
}

static PyObject *acc_finish_checked(PyObject *self, PyObject *unused) {
    return acc_ready((Accumulator *)self) ? acc_finish((Accumulator *)self, unused) : NULL;
}

static PyMethodDef acc_methods[] = {
    {"add", acc_add_checked, METH_VARARGS,
     "add(requests, default_tenant, read_tenant, internal_agent_usage) -> extras\n\n"
     "Sums serialized ExportTraceServiceRequests (a tuple, read as their merge)."},
    {"submit", acc_submit_checked, METH_VARARGS,
     "submit(token, requests, default_tenant, read_tenant, internal_agent_usage) -> results\n\n"
     "Hands the requests to the worker thread; returns the results of the submitted\n"
     "requests walked by now, in order: (token, extras, or None when declined)."},
    {"finish", acc_finish_checked, METH_NOARGS,
     "finish() -> results: waits for every submitted request and returns the rest of the results."},
    {"pending", (PyCFunction)acc_pending, METH_NOARGS, "Submitted requests whose results were not returned."},
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
