/*
 * pii_redaction's request prefilter for the built-in detectors, in one pass over the bytes.
 *
 * Why by hand: the prefilter used to be one RE2 regex, the alternation of every detector's
 * anchor, run over the serialized request. RE2 has no literal to skip to in that
 * alternation (digit classes, case-insensitive words), so its DFA steps every byte, and its
 * states multiply with the overlapping digit counters: 4.4-8.3 us per 1.5 kB span on the
 * benchmark workload, the largest share of the processor (no single anchor scans faster
 * than ~2.1 us). hyperscan measured slower still on this anchor set. Here a table skips
 * the bytes that no anchor can start from or pass through without a rarer byte, and each
 * rarer byte gets a few comparisons.
 *
 * Contract with processors/pii_redaction/engine.py: every match of every anchor of the
 * enabled detectors (detectors.py) overlaps a window returned by scan(), which flags the
 * fields the windows fall in; a window may hold no match (it costs a field's search),
 * never miss one. Overlap is enough: a window inside a match's string flags the field,
 * and scan_text() widens it to bytes the detector's matches cannot hold. Each family
 * below states the anchors it covers and why its window meets them; changing an anchor in
 * detectors.py means checking its family here (tests/test_pii_prefilter.py compares both
 * on generated input).
 *
 * Key rules (blocked_key_patterns, key_rules) are matched on the attribute and JSON keys
 * themselves: a key is found by its framing (protobuf `0x0a len key 0x12` with the key's
 * length and UTF-8 bytes, JSON `"key" :` or `\"key\" :`) and looked up in a cache of
 * decisions the caller made with RE2 (learn()). Keys are few, so nearly every lookup hits
 * and no regex runs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* x86-64 with GCC or clang: the scan classifies 64 bytes at a time with AVX2 when the CPU
 * has it (checked at import), and a scalar loop does the same everywhere else. */
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_AVX2_CODE 1
#endif

/* Whether the scans use the AVX2 code: the CPU has it and use_vector() did not turn it off. */
static int use_avx2;

/* Families: one flag per built-in detector (or group of detectors) handled here. */
enum {
    F_EMAIL = 1 << 0,         /* email */
    F_DIGITS = 1 << 1,        /* credit_card, us_ssn, phone, ipv4 */
    F_IBAN = 1 << 2,          /* iban */
    F_IPV6 = 1 << 3,          /* ipv6 */
    F_SK = 1 << 4,            /* openai_api_key, anthropic_api_key */
    F_AWS_ID = 1 << 5,        /* aws_access_key_id */
    F_AWS_SECRET = 1 << 6,    /* aws_secret_access_key */
    F_GITHUB = 1 << 7,        /* github_token */
    F_GITLAB = 1 << 8,        /* gitlab_token */
    F_SLACK = 1 << 9,         /* slack_token */
    F_STRIPE = 1 << 10,       /* stripe_key */
    F_GOOGLE = 1 << 11,       /* google_api_key */
    F_JWT = 1 << 12,          /* jwt */
    F_PEM = 1 << 13,          /* private_key */
    F_BEARER = 1 << 14,       /* bearer_token */
    F_BASIC = 1 << 15,        /* basic_auth */
    F_URL_CREDENTIALS = 1 << 16, /* url_credentials */
    F_URL_TOKEN = 1 << 17,    /* url_token_param */
    F_ASSIGNMENT = 1 << 18,   /* secret_assignment */
    F_KEYS = 1 << 19,         /* key rules, through the key cache */
    F_PHONE_ZERO = 1 << 20,   /* phone, regions with a national prefix 0: \(?0(?:[ .\-()/]{0,2}\d){6} */
    F_PHONE_SEVEN = 1 << 21,  /* phone, regions without one: \d(?:[ .]?\d){6} */
    F_IPV4_PUBLIC = 1 << 22,  /* ipv4 redacts no private, loopback or link-local address */
};

/* One bit per built-in detector: scan_text() says which detectors a window may hold, so
 * that only those run, and only around it (engine.py, Redactor). */
enum {
    D_EMAIL = 1 << 0,
    D_CREDIT_CARD = 1 << 1,
    D_US_SSN = 1 << 2,
    D_PHONE = 1 << 3,
    D_IPV4 = 1 << 4,
    D_IBAN = 1 << 5,
    D_IPV6 = 1 << 6,
    D_OPENAI = 1 << 7,
    D_ANTHROPIC = 1 << 8,
    D_AWS_ID = 1 << 9,
    D_AWS_SECRET = 1 << 10,
    D_GITHUB = 1 << 11,
    D_GITLAB = 1 << 12,
    D_SLACK = 1 << 13,
    D_STRIPE = 1 << 14,
    D_GOOGLE = 1 << 15,
    D_JWT = 1 << 16,
    D_PEM = 1 << 17,
    D_BEARER = 1 << 18,
    D_BASIC = 1 << 19,
    D_URL_CREDENTIALS = 1 << 20,
    D_URL_TOKEN = 1 << 21,
    D_ASSIGNMENT = 1 << 22,
};
#define N_DETECTOR_BITS 23

/* What a byte triggers (0: nothing, skipped by the tight loop). */
enum {
    T_NONE,
    T_DIGIT,
    T_AT,
    T_COLON,
    T_EQUALS,
    T_DASH,
    T_UNDERSCORE,
    T_UPPER_A,
    T_UPPER_J,
    T_W,
    T_B,
    T_K,
    T_SLASH,
    T_VALUE_TAG,
};

static inline int is_digit(uint8_t c) { return (unsigned)(c - '0') < 10; }
static inline int is_alpha(uint8_t c) { return (unsigned)((c | 0x20) - 'a') < 26; }
static inline int is_upper(uint8_t c) { return (unsigned)(c - 'A') < 26; }
static inline int is_alnum(uint8_t c) { return is_digit(c) || is_alpha(c); }
static inline int is_hex(uint8_t c) { return is_digit(c) || (unsigned)((c | 0x20) - 'a') < 6; }
static inline uint8_t lower(uint8_t c) { return is_alpha(c) ? (uint8_t)(c | 0x20) : c; }
/* RE2's \s: [\t\n\f\r ] */
static inline int is_space(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r'; }
/* The separators number anchors allow between digits: [ .\-()/] */
static inline int is_digit_separator(uint8_t c) {
    return c == ' ' || c == '.' || c == '-' || c == '(' || c == ')' || c == '/';
}
/* A key rule's relaxed dot, [^\x00-\x1f"\\]: the bytes a key can be made of. */
static inline int is_key_byte(uint8_t c) { return c >= 0x20 && c != '"' && c != '\\'; }
/* RE2's \w, ASCII only in both its Latin-1 and UTF-8 modes. */
static inline int is_word(uint8_t c) { return is_alnum(c) || c == '_'; }

/* The native matchers read the byte classes above. */
#include "_matchers.h"

#ifdef HAVE_AVX2_CODE
/* key_run_start 32 bytes at a time: keys run ~20-30 bytes, one step finds most. */
__attribute__((target("avx2,lzcnt"))) static size_t key_run_start_avx2(const uint8_t *b, size_t end) {
    const __m256i below_space = _mm256_set1_epi8(0x1f), quote = _mm256_set1_epi8('"'),
                  backslash = _mm256_set1_epi8('\\');
    while (end >= 32) {
        __m256i v = _mm256_loadu_si256((const __m256i *)(b + end - 32));
        __m256i stop = _mm256_or_si256(_mm256_cmpeq_epi8(_mm256_min_epu8(v, below_space), v),
                                       _mm256_or_si256(_mm256_cmpeq_epi8(v, quote), _mm256_cmpeq_epi8(v, backslash)));
        uint32_t mask = (uint32_t)_mm256_movemask_epi8(stop);
        if (mask) return end - _lzcnt_u32(mask); /* just after the last byte that is not a key byte */
        end -= 32;
    }
    while (end > 0 && is_key_byte(b[end - 1])) end--;
    return end;
}
#endif

/* Where the run of key bytes that ends at `end` starts: a key read backwards from the
 * byte after it. */
static size_t key_run_start(const uint8_t *b, size_t end) {
#ifdef HAVE_AVX2_CODE
    if (use_avx2) return key_run_start_avx2(b, end);
#endif
    while (end > 0 && is_key_byte(b[end - 1])) end--;
    return end;
}

/* p[0..n) equals the lowercase ASCII `word`, ignoring case. */
static int ci_equal(const uint8_t *p, const char *word, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (lower(p[i]) != (uint8_t)word[i]) return 0;
    return 1;
}

/* ------------------------------------------------------------------ key cache */

enum { KEY_CLEAN = 1, KEY_HIT = 2 }; /* a slot's decision; 0: an empty slot */
/* The table starts small and doubles as keys are learnt: a few hundred keys in 64 kB stay
 * in cache, where a fixed 8192-slot table with the keys allocated apart cost two cache
 * misses per lookup, ~30 lookups per span. */
#define KEY_MIN_SLOTS 512 /* powers of two */
#define KEY_MAX_SLOTS 8192
#define KEY_MAX_ENTRIES (KEY_MAX_SLOTS / 2)
#define KEY_MAX_LEN 512 /* longer keys are decided by the caller every time */
#define KEY_INLINE 40   /* keys up to this long are kept in their slot */

typedef struct {
    uint64_t hash;
    uint8_t *bytes; /* a key longer than KEY_INLINE; NULL otherwise */
    uint32_t len;
    uint8_t decision;
    uint8_t inline_bytes[KEY_INLINE];
} KeySlot;

static inline const uint8_t *slot_key(const KeySlot *slot) {
    return slot->bytes != NULL ? slot->bytes : slot->inline_bytes;
}

/* Keys are short and looked up for every attribute, so the hash reads at most 16 bytes
 * (the first and last 8) and the length; the comparison that follows sees them all. */
static inline uint64_t load_le(const uint8_t *p, size_t n) {
    uint64_t v = 0;
    memcpy(&v, p, n < 8 ? n : 8);
    return v;
}

static uint64_t hash_bytes(const uint8_t *p, size_t n) {
    uint64_t head = load_le(p, n), tail = n > 8 ? load_le(p + n - 8, 8) : 0;
    uint64_t h = (head ^ 0x9E3779B97F4A7C15ULL) * 0xBF58476D1CE4E5B9ULL;
    h ^= (tail + n) * 0x94D049BB133111EBULL;
    return h ^ (h >> 29);
}

/* ------------------------------------------------------------------ the object */

typedef struct {
    size_t start, end;
    uint32_t dets; /* D_* bits of the detectors whose anchors it may hold */
} Window;

/* A framed key: [start, end) the framing, [key_start, key_end) the key's bytes; `hit`: the
 * key is learnt as a hit, else it is not learnt yet (keys learnt clean are not kept). */
typedef struct {
    size_t start, end, key_start, key_end;
    int hit;
} FramedKey;

/* What one scan found, in C memory (the raw allocator: a scan may run without the GIL);
 * turned into Python lists by the caller, with the GIL. */
typedef struct {
    Window *windows;
    size_t n_windows, cap_windows;
    FramedKey *keys;
    size_t n_keys, cap_keys;
} Found;

/* A request handed to the worker thread (submit) and its result (completed). */
typedef struct Job {
    struct Job *next;
    Py_buffer view; /* holds the bytes until the result is collected */
    unsigned long long id;
    Found found;
    int failed; /* out of memory during the scan */
} Job;

typedef struct Prefilter {
    PyObject_HEAD
    uint32_t families;
    uint8_t table[256];
    /* The trigger bytes by nibble, for the AVX2 scan: byte c may trigger when
     * nibble_lo[c & 15] & nibble_hi[c >> 4] is not 0 (set_nibble_classes). */
    uint8_t nibble_lo[16], nibble_hi[16];
    /* iban_country[(A - 'A') * 26 + (B - 'A')]: "AB" is a country of the IBAN registry.
     * All set when the caller gives no list. */
    uint8_t iban_country[26 * 26];
    /* breaks[c] bit d: byte c is never inside a match of detector bit d, so a region
     * around a window may end there. No bit: the region is the whole text. */
    uint32_t breaks[256];
    /* scan_text's detectors, in the caller's order: their bits and the caller's indexes. */
    unsigned text_bits[N_DETECTOR_BITS];
    Py_ssize_t text_index[N_DETECTOR_BITS];
    uint8_t text_native[N_DETECTOR_BITS]; /* found by _matchers.h, not handed to RE2 */
    unsigned n_text;
    NativeChecks native;
    KeySlot *keys;
    size_t key_slots; /* a power of two */
    size_t key_count;
    /* The scans of the calling thread (scan, scan_text) reuse this one. */
    Found scratch;
    /* Held by every scan and every change to the tables and the keys: the worker thread
     * scans while the GIL holder may learn a key. Taken without the GIL only when busy. */
    pthread_mutex_t lock;
    /* The worker thread (submit, completed): jobs wait in `pending`, results in `done`,
     * both FIFO, under `queue_lock`; `ready_fds` is a pipe that gets a byte when a result
     * is done and none was signalled since the last completed(). The worker never takes
     * the GIL. */
    pthread_mutex_t queue_lock;
    pthread_cond_t queue_cond;
    Job *pending, *pending_tail, *done, *done_tail;
    Job *running; /* the job the worker is scanning */
    unsigned long long next_id;
    int stop, signalled;
    int ready_fds[2];
    pid_t worker_pid; /* the process that started the worker; 0 when none */
    pthread_t worker;
    struct Prefilter *live_prev, *live_next; /* every live prefilter, for the fork handlers */
} Prefilter;

typedef struct {
    Prefilter *pf;
    const uint8_t *b;
    size_t n;
    Found *found;
    int failed;
    int text; /* scan_text: b is one string value, so its first byte starts a value */
} Scan;

/* Grows a Found array by doubling; -1 without memory. */
static int reserve(void **items, size_t *cap, size_t n, size_t size) {
    if (n < *cap) return 0;
    size_t grown = *cap ? *cap * 2 : 64;
    void *p = PyMem_RawRealloc(*items, grown * size);
    if (p == NULL) return -1;
    *items = p;
    *cap = grown;
    return 0;
}

static void add_window(Scan *s, size_t start, size_t end, uint32_t dets) {
    Found *f = s->found;
    if (end > s->n) end = s->n;
    if (s->failed || start >= end) return;
    if (reserve((void **)&f->windows, &f->cap_windows, f->n_windows, sizeof(Window)) < 0) {
        s->failed = 1;
        return;
    }
    f->windows[f->n_windows++] = (Window){start, end, dets};
}

static void add_key(Scan *s, FramedKey key) {
    Found *f = s->found;
    if (reserve((void **)&f->keys, &f->cap_keys, f->n_keys, sizeof(FramedKey)) < 0) {
        s->failed = 1;
        return;
    }
    f->keys[f->n_keys++] = key;
}

static void free_found(Found *f) {
    PyMem_RawFree(f->windows);
    PyMem_RawFree(f->keys);
    *f = (Found){0};
}

static size_t back(size_t t, size_t k) { return t > k ? t - k : 0; }

/* p[0..n) may be UTF-8: each lead byte has its count of continuation bytes (a superset of
 * valid UTF-8: overlong forms and surrogates pass). */
static int may_be_utf8(const uint8_t *p, size_t n) {
    for (size_t i = 0; i < n;) {
        uint8_t c = p[i++];
        unsigned more = c < 0x80 ? 0 : c >= 0xC2 && c <= 0xDF ? 1 : c >= 0xE0 && c <= 0xEF ? 2 : c >= 0xF0 && c <= 0xF4 ? 3 : 4;
        if (more == 4 || more > n - i) return 0;
        for (; more; more--)
            if ((p[i++] & 0xC0) != 0x80) return 0;
    }
    return 1;
}

/* A key found by its framing: the whole framed match is [start, end), the key bytes
 * [key_start, key_end). Known keys are answered from the cache; an unknown one is left to
 * the caller, unless `utf8` asks for UTF-8 and the bytes are not (a protobuf KeyValue key
 * is a proto3 string, which the request could not have been parsed with otherwise; the
 * check waits for a miss, since a learnt key's bytes passed it). */
static void found_key(Scan *s, size_t start, size_t end, size_t key_start, size_t key_end, int utf8) {
    if (s->failed) return;
    size_t len = key_end - key_start;
    const uint8_t *key = s->b + key_start;
    if (len <= KEY_MAX_LEN) {
        uint64_t h = hash_bytes(key, len);
        size_t mask = s->pf->key_slots - 1;
        for (size_t i = h & mask;; i = (i + 1) & mask) {
            KeySlot *slot = &s->pf->keys[i];
            if (slot->decision == 0) break;
            if (slot->hash == h && slot->len == len && memcmp(slot_key(slot), key, len) == 0) {
                if (slot->decision == KEY_HIT) add_key(s, (FramedKey){start, end, key_start, key_end, 1});
                return;
            }
        }
    }
    if (utf8 && !may_be_utf8(key, len)) return;
    add_key(s, (FramedKey){start, end, key_start, key_end, 0});
}

/* ------------------------------------------------------------------ families */

/* credit_card, us_ssn, phone, ipv4 (F_DIGITS, F_PHONE_*) and iban (F_IBAN), from the first
 * digit t of a run. Number anchors allow at most 2 separators [ .\-()/] between consecutive
 * digits, so each of their matches lies in one "cluster": a maximal run of digit groups
 * joined by one or two separators, plus at most 48 bytes before its first digit (a '+',
 * '(', the value-start byte or a field tag with its length, or "social security number"
 * and up to 20 non-word bytes). The cluster is read as groups, and each anchor's shape is
 * checked on them (detectors.py, phone_anchors), VS being the value start (_VALUE_START):
 *   VS\d(?:[ \-]?\d){11}                      12 digits in groups joined by one [ -]
 *   \d{3}[ \-]\d{2}[ \-]\d{4}                  groups >=3, ==2, >=4 joined by one [ -]
 *   VS\d{10}                                 a group of 10 or more
 *   (?i)(?:ssn|social security)...\d{9}       a group of 9 or more after such a label
 *   \+\d(?:[ .\-()/]{0,2}\d){6}                 '+' before the cluster, 7 digits from there
 *   \d{3}(?:\)[ .\-]?|[ .\-])\d{3}[ .\-]\d{4}    groups >=3, ==3, >=4
 *   \d\.\d{1,3}\.\d{1,3}\.\d                   groups joined by single dots, inner ones of 1-3
 *   VS\(?0(?:[ .\-()/]{0,2}\d){6}               (F_PHONE_ZERO) a '0' first in its group, 7 digits
 *   VS\d(?:[ .]?\d){6}                        (F_PHONE_SEVEN) 7 digits in groups joined by one [ .]
 * A group after a separator always has a value start before it. The first group has one
 * when the byte before it is not a word byte, or when that byte can be a string's length
 * after its field tag; and the first digit can itself be a length (any byte is), which
 * only adds a digit to the counts below or puts a '0' second in the first group. */
#define MAX_GROUPS 64

static inline int single_of(const uint8_t *sep, unsigned len, const char *set) {
    return len == 1 && strchr(set, sep[0]) != NULL;
}

static inline int is_value_tag(uint8_t c) { return c == 0x0a || c == 0x12 || c == 0x2a || c == 0x3a; }

/* _VALUE_START can end right before b[t]: a non-word byte, or a field tag, up to three
 * length continuation bytes and the length's last byte b[t - 1]. */
static int value_start_before(const Scan *s, size_t t) {
    const uint8_t *b = s->b;
    if (t == 0) return s->text;
    if (!is_word(b[t - 1])) return 1;
    for (size_t k = 2; k <= 5 && k <= t; k++) {
        if (is_value_tag(b[t - k])) return 1;
        if (b[t - k] < 0x80) return 0;
    }
    return 0;
}

/* (?i)(?:ssn|social security) ending within the 48 bytes before t. */
static int ssn_label_before(const uint8_t *b, size_t t) {
    for (size_t i = back(t, 48); i + 3 <= t; i++)
        if (ci_equal(b + i, "ssn", 3) || (i + 8 <= t && ci_equal(b + i, "security", 8))) return 1;
    return 0;
}

/* The value of the octet of 1-3 digits at p, or -1: not 1-3 digits or a leading zero. */
static int octet(const uint8_t *p, unsigned len) {
    if (len == 0 || len > 3 || (len > 1 && p[0] == '0')) return -1;
    int v = 0;
    for (unsigned i = 0; i < len; i++) v = v * 10 + (p[i] - '0');
    return v;
}

/* Whether an address whose first two octets are these is private for every Python since
 * 3.11 (not is_global): 0/8, 10/8, 127/8, 169.254/16, 172.16/12, 192.168/16. The ipv4
 * validator redacts none when it redacts only public addresses; tests/test_pii_prefilter.py
 * checks these ranges against the validator of the running Python. */
static int private_ipv4(int first, int second) {
    if (first < 0 || second < 0) return 0;
    return first == 0 || first == 10 || first == 127 || (first == 169 && second == 254) ||
           (first == 172 && second >= 16 && second <= 31) || (first == 192 && second == 168);
}

/* A cluster of exactly four groups joined by single dots holds at most one ipv4 match,
 * \b(?:\d{1,3}\.){3}\d{1,3}\b: the whole cluster, or, when its first digit may be the
 * string's length, the cluster without that digit (none if the group had no other). It
 * needs no ipv4 window when the match's first two octets make it private in both readings:
 * requests often name private hosts (10.0.0.5, 192.168.1.20). Only the first group is
 * read two ways: framing bytes after a string can only lengthen its last group or add
 * groups, neither of which moves an address out of these ranges. */
static int private_quad(const uint8_t *b, const size_t *start, const unsigned *len, int first_may_be_length) {
    int second = octet(b + start[1], len[1]);
    if (!private_ipv4(octet(b + start[0], len[0]), second)) return 0;
    return !first_may_be_length || len[0] == 1 || private_ipv4(octet(b + start[0] + 1, len[0] - 1), second);
}

/* The D_* bits of the number anchors that may match in the cluster (0: none). */
static uint32_t digits_anchors_may_match(Scan *s, size_t t, const size_t *start, const unsigned *len, unsigned groups) {
    const uint8_t *b = s->b;
    uint32_t f = s->pf->families, may = 0;
    unsigned total = 0;
    for (unsigned k = 0; k < groups; k++) total += len[k];
    if (total < 4) return 0;
    if (t > 0 && b[t - 1] == '+' && total >= 7) may |= D_PHONE;
    int first_may_be_length = t > 0 && (b[t - 1] >= 0x80 || is_value_tag(b[t - 1]));
    int first_has_start = value_start_before(s, t) || first_may_be_length;
    /* card: digits of the current [ -]-joined chain, counted from a group with a value start */
    unsigned card = 0, national = 0, after = total;
    int card_on = first_has_start;
    for (unsigned k = 0; k < groups; k++) {
        const uint8_t *sep = b + start[k] + len[k]; /* the separators after group k */
        unsigned sep_len = k + 1 < groups ? (unsigned)(start[k + 1] - start[k] - len[k]) : 0;
        int has_start = k > 0 || first_has_start;
        if (has_start && len[k] >= 10) may |= D_PHONE;
        if (len[k] >= 9 && (k > 0 || value_start_before(s, t)) && ssn_label_before(b, start[k])) may |= D_US_SSN;
        if ((f & F_PHONE_ZERO) && has_start && after >= 7 &&
            (b[start[k]] == '0' || (k == 0 && first_may_be_length && len[k] > 1 && b[start[k] + 1] == '0')))
            may |= D_PHONE;
        after -= len[k];
        if (card_on) card += len[k];
        national += len[k];
        if (card >= 12) may |= D_CREDIT_CARD;
        if ((f & F_PHONE_SEVEN) && national >= 7) may |= D_PHONE;
        if (!single_of(sep, sep_len, " -") || !card_on) {
            card = 0;
            card_on = 1; /* the next group starts a chain after a separator */
        }
        if (!single_of(sep, sep_len, " .")) national = 0;
        if (k + 2 < groups) {
            const uint8_t *sep2 = b + start[k + 1] + len[k + 1];
            unsigned sep2_len = (unsigned)(start[k + 2] - start[k + 1] - len[k + 1]);
            /* SSN: >=3 [ -] 2 [ -] >=4 */
            if (len[k] >= 3 && len[k + 1] == 2 && len[k + 2] >= 4 && single_of(sep, sep_len, " -") &&
                single_of(sep2, sep2_len, " -"))
                may |= D_US_SSN;
            /* NANP phone: >=3 (")" [ .-]? | [ .-]) 3 [ .-] >=4 */
            if (len[k] >= 3 && len[k + 1] == 3 && len[k + 2] >= 4 && single_of(sep2, sep2_len, " .-") &&
                (single_of(sep, sep_len, ") .-") || (sep_len == 2 && sep[0] == ')' && strchr(" .-", sep[1]))))
                may |= D_PHONE;
        }
        if (k + 3 < groups && len[k + 1] <= 3 && len[k + 2] <= 3) {
            /* IPv4: groups joined by single dots */
            int dots = 1;
            for (unsigned j = k; j < k + 3 && dots; j++) {
                unsigned l = (unsigned)(start[j + 1] - start[j] - len[j]);
                dots = l == 1 && b[start[j] + len[j]] == '.';
            }
            if (dots && !(groups == 4 && (f & F_IPV4_PUBLIC) &&
                          private_quad(b, start, len, first_may_be_length && !s->text)))
                may |= D_IPV4;
        }
    }
    return may;
}

/* Four [A-Z0-9] (any case when `any_case`) at b[k..k+4). */
static int four_of(const uint8_t *b, size_t n, size_t k, int any_case) {
    if (k + 4 > n) return 0;
    for (size_t i = k; i < k + 4; i++)
        if (!(is_digit(b[i]) || is_upper(b[i]) || (any_case && is_alpha(b[i])))) return 0;
    return 1;
}

/* After two letters and the two digits at t: CC\d{2} ?[A-Z0-9]{4} ?[A-Z0-9]{4}, or
 * (?i:CC\d{2} [A-Z0-9]{4} [A-Z0-9]{4}), CC one of the registry's countries (any case: the
 * case-sensitive form is checked below). Base32 and hex ids hold this shape often: without
 * the country, ~5 windows per 100-span request held no anchor's match. */
static int iban_shape_at(const Prefilter *pf, const uint8_t *b, size_t n, size_t t) {
    if (!pf->iban_country[((b[t - 2] | 0x20) - 'a') * 26 + ((b[t - 1] | 0x20) - 'a')]) return 0;
    size_t k = t + 2;
    if (k + 1 < n && b[k] == ' ' && four_of(b, n, k + 1, 1) && k + 5 < n && b[k + 5] == ' ' && four_of(b, n, k + 6, 1))
        return 1;
    if (!is_upper(b[t - 2]) || !is_upper(b[t - 1])) return 0;
    if (k < n && b[k] == ' ') k++;
    if (!four_of(b, n, k, 0)) return 0;
    k += 4;
    if (k < n && b[k] == ' ') k++;
    return four_of(b, n, k, 0);
}

/* Where the cluster's next group of digits starts after the group that ends at i (one or
 * two separators [ .\-()/], then a digit), or 0 when the cluster ends at i. */
static size_t next_group(const uint8_t *b, size_t n, size_t i) {
    size_t j = i;
    while (j < n && j - i < 3 && is_digit_separator(b[j])) j++;
    return j - i > 2 || j == i || j >= n || !is_digit(b[j]) ? 0 : j;
}

static size_t on_digits(Scan *s, size_t t) {
    const uint8_t *b = s->b;
    size_t n = s->n;
    uint32_t f = s->pf->families;
    if ((f & F_IBAN) && t >= 2 && t + 1 < n && is_alpha(b[t - 2]) && is_alpha(b[t - 1]) && is_digit(b[t + 1]) &&
        iban_shape_at(s->pf, b, n, t))
        add_window(s, t - 2, t + 14, D_IBAN);
    size_t i = t;
    while (i < n && is_digit(b[i])) i++;
    /* Most runs are a lone group of one to three digits (ids, counts, versions): no anchor
     * holds fewer than four digits in its cluster, so the cluster is read only when
     * separators and another digit follow. */
    if (i - t < 4 && next_group(b, n, i) == 0) return i;
    size_t start[MAX_GROUPS];
    unsigned len[MAX_GROUPS];
    unsigned groups = 0;
    int overflow = 0;
    size_t last = t;
    i = t;
    while (i < n) {
        size_t g = i;
        while (i < n && is_digit(b[i])) i++;
        if (groups < MAX_GROUPS) {
            start[groups] = g;
            len[groups++] = (unsigned)(i - g);
        } else {
            overflow = 1;
        }
        last = i - 1;
        if ((i = next_group(b, n, i)) == 0) break;
    }
    if (f & (F_DIGITS | F_PHONE_ZERO | F_PHONE_SEVEN)) {
        uint32_t may = overflow ? D_CREDIT_CARD | D_US_SSN | D_PHONE | D_IPV4
                                : digits_anchors_may_match(s, t, start, len, groups);
        /* The digits alone: every number anchor holds some of them (what comes before, a
         * label, "+" or "(", need not be inside; see the contract above). */
        if (may) add_window(s, t, last + 1, may);
    }
    return last + 1;
}

/* email: @[A-Za-z0-9\-]+\.[A-Za-z], starting at the '@'. */
static void on_at(Scan *s, size_t t) {
    const uint8_t *b = s->b;
    size_t i = t + 1;
    while (i < s->n && (is_alnum(b[i]) || b[i] == '-')) i++;
    if (i > t + 1 && i + 1 < s->n && b[i] == '.' && is_alpha(b[i + 1])) add_window(s, t, i + 2, D_EMAIL);
}

/* (?i)(?:api|access|private)[_\-]?key or (?i)(?:auth|access)[_\-]?token ending at j, the
 * suffix (key / token) already compared. */
static int prefixed_word_ends_at(const uint8_t *b, size_t j, size_t suffix, int token) {
    size_t e = j - suffix;
    if (e > 0 && (b[e - 1] == '_' || b[e - 1] == '-')) e--;
    if (e >= 6 && ci_equal(b + e - 6, "access", 6)) return 1;
    if (token) return e >= 4 && ci_equal(b + e - 4, "auth", 4);
    return (e >= 3 && ci_equal(b + e - 3, "api", 3)) || (e >= 7 && ci_equal(b + e - 7, "private", 7));
}

/* secret_assignment: (?i)(?:password|passwd|pwd|secret|api[_\-]?key|access[_\-]?key|
 * auth[_\-]?token|access[_\-]?token|private[_\-]?key)[\"']?\s*[:=], ending at t. */
static void on_assignment(Scan *s, size_t t) {
    const uint8_t *b = s->b;
    size_t j = t;
    while (j > 0 && is_space(b[j - 1])) j--;
    if (j > 0 && (b[j - 1] == '"' || b[j - 1] == '\'')) j--;
    if (j < 3) return;
    int found;
    switch (lower(b[j - 1])) { /* the words' last letters: most colons stop here */
    case 'd':
        found = (j >= 8 && ci_equal(b + j - 8, "password", 8)) || (j >= 6 && ci_equal(b + j - 6, "passwd", 6)) ||
                ci_equal(b + j - 3, "pwd", 3);
        break;
    case 't': found = j >= 6 && ci_equal(b + j - 6, "secret", 6); break;
    case 'y': found = ci_equal(b + j - 3, "key", 3) && prefixed_word_ends_at(b, j, 3, 0); break;
    case 'n': found = j >= 5 && ci_equal(b + j - 5, "token", 5) && prefixed_word_ends_at(b, j, 5, 1); break;
    default: found = 0;
    }
    if (found) add_window(s, back(j, 20), t + 1, D_ASSIGNMENT);
}

/* A JSON object key before the ':' at t: "key"\s*: or, inside a JSON string, \"key\"\s*: */
static void on_json_key(Scan *s, size_t t) {
    const uint8_t *b = s->b;
    size_t j = t;
    while (j > 0 && is_space(b[j - 1])) j--;
    if (j == 0 || b[j - 1] != '"') return;
    size_t close = j - 1;
    if (close > 0 && b[close - 1] == '\\') {
        size_t key_end = close - 1, key_start = key_run_start(b, key_end);
        if (key_start >= 2 && b[key_start - 1] == '"' && b[key_start - 2] == '\\')
            found_key(s, key_start - 2, t + 1, key_start, key_end, 0);
        return;
    }
    size_t key_start = key_run_start(b, close);
    if (key_start > 0 && b[key_start - 1] == '"') found_key(s, key_start - 1, t + 1, key_start, close, 0);
}

static void on_colon(Scan *s, size_t t) {
    const uint8_t *b = s->b;
    size_t n = s->n;
    uint32_t f = s->pf->families;
    if (f & F_IPV6) {
        /* [0-9A-Fa-f]:: and ::[0-9A-Fa-f] */
        if (t + 1 < n && b[t + 1] == ':' && ((t > 0 && is_hex(b[t - 1])) || (t + 2 < n && is_hex(b[t + 2]))))
            add_window(s, back(t, 1), t + 3, D_IPV6);
        /* (?:[0-9A-Fa-f]{1,4}:){7}: from its first ':', six more groups follow */
        if (t > 0 && is_hex(b[t - 1])) {
            size_t j = t + 1;
            int groups = 0;
            while (groups < 6) {
                size_t h = j;
                while (j < n && j - h < 4 && is_hex(b[j])) j++;
                if (j == h || j >= n || b[j] != ':') break;
                j++;
                groups++;
            }
            if (groups == 6) add_window(s, back(t, 4), j, D_IPV6);
        }
    }
    if ((f & F_URL_CREDENTIALS) && t + 2 < n && b[t + 1] == '/' && b[t + 2] == '/') {
        /* ://[^\s:/@\"'<>]*:[^\s/@\"'<>]+@ */
        size_t j = t + 3;
        while (j < n && !is_space(b[j]) && memchr(":/@\"'<>", b[j], 7) == NULL) j++;
        if (j < n && b[j] == ':') {
            size_t k = j + 1;
            while (k < n && !is_space(b[k]) && memchr("/@\"'<>", b[k], 6) == NULL) k++;
            if (k > j + 1 && k < n && b[k] == '@') add_window(s, t, k + 1, D_URL_CREDENTIALS);
        }
    }
    if (f & F_ASSIGNMENT) on_assignment(s, t);
    if (f & F_KEYS) on_json_key(s, t);
}

static void on_equals(Scan *s, size_t t) {
    const uint8_t *b = s->b;
    if (s->pf->families & F_URL_TOKEN) {
        /* (?i)[?&](?:access_token|...|client_secret)=: a word of at most 13 [A-Za-z_] */
        size_t j = t;
        while (j > 0 && t - j < 14 && (is_alpha(b[j - 1]) || b[j - 1] == '_')) j--;
        if (j < t && j > 0 && (b[j - 1] == '?' || b[j - 1] == '&')) add_window(s, j - 1, t + 1, D_URL_TOKEN);
    }
    if (s->pf->families & F_ASSIGNMENT) on_assignment(s, t);
}

static void on_dash(Scan *s, size_t t) {
    const uint8_t *b = s->b;
    uint32_t f = s->pf->families;
    /* sk-[A-Za-z0-9_\-]{20}, sk-ant- (only then may the anthropic detector match) */
    if ((f & F_SK) && t >= 2 && b[t - 2] == 's' && b[t - 1] == 'k') {
        int ant = t + 5 <= s->n && memcmp(b + t + 1, "ant-", 4) == 0;
        add_window(s, t - 2, t + 22, D_OPENAI | (ant ? D_ANTHROPIC : 0));
    }
    /* gl(?:pat|ptt|dt|rt|soat|cbt|imt|ft|oas|agent)-: a word of 2-5 letters after "gl" */
    if (f & F_GITLAB)
        for (size_t k = 2; k <= 5; k++)
            if (t >= k + 2 && b[t - k - 2] == 'g' && b[t - k - 1] == 'l') add_window(s, t - k - 2, t + 1, D_GITLAB);
    if ((f & F_SLACK) && t >= 4) {
        if (memcmp(b + t - 4, "xox", 3) == 0) add_window(s, t - 4, t + 1, D_SLACK); /* xox[abposr]- */
        if (memcmp(b + t - 4, "xapp", 4) == 0) add_window(s, t - 4, t + 3, D_SLACK); /* xapp-\d- */
    }
    if ((f & F_PEM) && t + 10 <= s->n && memcmp(b + t, "-----BEGIN", 10) == 0) add_window(s, t, t + 10, D_PEM);
}

static void on_underscore(Scan *s, size_t t) {
    const uint8_t *b = s->b;
    uint32_t f = s->pf->families;
    if (f & F_STRIPE) {
        /* [sr]k_(?:live|test)_, whsec_ */
        if (t >= 2 && b[t - 1] == 'k' && (b[t - 2] == 's' || b[t - 2] == 'r')) add_window(s, t - 2, t + 7, D_STRIPE);
        if (t >= 5 && memcmp(b + t - 5, "whsec", 5) == 0) add_window(s, t - 5, t + 1, D_STRIPE);
    }
    if (f & F_GITHUB) {
        /* gh[pousr]_[A-Za-z0-9]{30}, github_pat_ */
        if (t >= 3 && b[t - 3] == 'g' && b[t - 2] == 'h' && memchr("pousr", b[t - 1], 5) != NULL)
            add_window(s, t - 3, t + 31, D_GITHUB);
        if (t >= 6 && memcmp(b + t - 6, "github", 6) == 0) add_window(s, t - 6, t + 5, D_GITHUB);
    }
}

static void on_upper_a(Scan *s, size_t t) {
    const uint8_t *b = s->b;
    if (t + 3 >= s->n) return;
    const uint8_t *w = b + t + 1;
    /* A(?:KIA|SIA|BIA|CCA|GPA|IDA|ROA|IPA|NPA|NVA|PKA)[A-Z0-9]{16} */
    if (s->pf->families & F_AWS_ID) {
        static const char prefixes[][4] = {"KIA", "SIA", "BIA", "CCA", "GPA", "IDA",
                                           "ROA", "IPA", "NPA", "NVA", "PKA"};
        for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++)
            if (memcmp(w, prefixes[i], 3) == 0) {
                add_window(s, t, t + 20, D_AWS_ID);
                break;
            }
    }
    /* AIza[0-9A-Za-z_\-]{30} */
    if ((s->pf->families & F_GOOGLE) && memcmp(w, "Iza", 3) == 0) add_window(s, t, t + 34, D_GOOGLE);
}

/* (?i)(?:bearer|token)\s+[A-Za-z0-9\-._~+/]{16} and (?i)basic\s+[A-Za-z0-9+/]{4}: the word
 * at [start, word_end), at least one \s (unbounded), then `tail` bytes of `chars`. */
static void word_then_spaces(Scan *s, size_t start, size_t word_end, size_t tail, const char *chars, uint32_t dets) {
    size_t j = word_end;
    while (j < s->n && is_space(s->b[j])) j++;
    if (j == word_end || j + tail > s->n) return;
    for (size_t k = j; k < j + tail; k++)
        if (!is_alnum(s->b[k]) && (s->b[k] == 0 || strchr(chars, s->b[k]) == NULL)) return;
    add_window(s, start, j + tail, dets);
}

static void on_b(Scan *s, size_t t) {
    size_t left = s->n - t;
    if ((s->pf->families & F_BEARER) && left >= 6 && ci_equal(s->b + t, "bearer", 6)) word_then_spaces(s, t, t + 6, 16, "-._~+/", D_BEARER);
    if ((s->pf->families & F_BASIC) && left >= 5 && ci_equal(s->b + t, "basic", 5)) word_then_spaces(s, t, t + 5, 4, "+/", D_BASIC);
}

static void on_k(Scan *s, size_t t) {
    if (t >= 2 && s->n - t >= 3 && ci_equal(s->b + t - 2, "token", 5)) word_then_spaces(s, t - 2, t + 3, 16, "-._~+/", D_BEARER);
}

/* The varint at b[first..last] (little-endian groups of 7 bits) equals `len`. */
static int varint_is(const uint8_t *b, size_t first, size_t last, size_t len) {
    size_t v = 0;
    for (size_t k = last + 1; k-- > first;) v = v << 7 | (b[k] & 0x7f);
    return v == len;
}

/* A protobuf KeyValue key before the value's tag 0x12 at t, framed as the key rules'
 * anchors frame it: 0x0a, a length of one to three bytes ([\x80-\xff]{0,2}[\x00-\x7f]), then
 * the key. The key is the run of key bytes before t; the length's last byte is either the
 * byte before that run (when it is not a key byte itself) or the run's first byte, the
 * 0x0a and any continuation bytes lying before it. Both readings are tried, and a reading
 * counts only when the length is the key's and the key may be UTF-8: a real key always
 * is so framed, while random bytes framed alike (a trace id, field 1, before a span id's
 * tag 0x12: ~16 per 100-span request) would each be a new key for the caller to decide
 * and for the cache to keep. */
static void on_value_tag(Scan *s, size_t t) {
    const uint8_t *b = s->b;
    size_t run = key_run_start(b, t);
    if (run == 0) return;
    size_t q = run - 1; /* the first byte before the key that is not a key byte */
    if (b[q] < 0x80) { /* b[q] as the length's last byte */
        size_t len = t - run;
        if (q >= 1 && b[q - 1] == 0x0a) {
            if (varint_is(b, q, q, len)) found_key(s, q - 1, t + 1, run, t, 1);
        } else if (q >= 2 && b[q - 1] >= 0x80 && b[q - 2] == 0x0a) {
            if (varint_is(b, q - 1, q, len)) found_key(s, q - 2, t + 1, run, t, 1);
        } else if (q >= 3 && b[q - 1] >= 0x80 && b[q - 2] >= 0x80 && b[q - 3] == 0x0a) {
            if (varint_is(b, q - 2, q, len)) found_key(s, q - 3, t + 1, run, t, 1);
        }
    }
    if (b[q] == 0x0a) { /* b[q] as the tag, the length inside the run */
        size_t k = q + 1;
        while (k < t && k - q <= 2 && b[k] >= 0x80) k++;
        if (k < t && b[k] < 0x80 && varint_is(b, q + 1, k, t - k - 1)) found_key(s, q, t + 1, k + 1, t, 1);
    }
}

/* ------------------------------------------------------------------ scan */

static int window_order(const void *a, const void *b) {
    const Window *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

/* What the trigger byte at i starts; returns where the scan goes on (past a number's
 * cluster, or the next byte). */
static inline size_t on_trigger(Scan *s, size_t i) {
    const uint8_t *b = s->b;
    size_t n = s->n;
    switch (s->pf->table[b[i]]) {
    case T_DIGIT: return on_digits(s, i);
    case T_AT: on_at(s, i); break;
    case T_COLON: on_colon(s, i); break;
    case T_EQUALS: on_equals(s, i); break;
    case T_DASH: on_dash(s, i); break;
    case T_UNDERSCORE: on_underscore(s, i); break;
    case T_UPPER_A: on_upper_a(s, i); break;
    case T_UPPER_J:
        /* eyJ[A-Za-z0-9_\-]{8} */
        if (i >= 2 && b[i - 2] == 'e' && b[i - 1] == 'y') add_window(s, i - 2, i + 9, D_JWT);
        break;
    case T_W:
        /* (?i)aws[_\-.]?secret */
        if (i >= 1 && i + 7 < n && lower(b[i - 1]) == 'a' && lower(b[i + 1]) == 's') {
            size_t j = i + 2 + (b[i + 2] == '_' || b[i + 2] == '-' || b[i + 2] == '.');
            if (j + 6 <= n && ci_equal(b + j, "secret", 6)) add_window(s, i - 1, j + 6, D_AWS_SECRET);
        }
        break;
    case T_B: on_b(s, i); break;
    case T_K: on_k(s, i); break;
    case T_SLASH:
        /* hooks\.slack\.com/services/ */
        if (i >= 15 && memcmp(b + i - 15, "hooks.slack.com", 15) == 0) add_window(s, i - 15, i + 10, D_SLACK);
        break;
    case T_VALUE_TAG: on_value_tag(s, i); break;
    default: break; /* a byte the AVX2 classes let through but the table does not hold */
    }
    return i + 1;
}

/* Classes of trigger bytes that the AVX2 scan tests 32 at a time with two nibble lookups:
 * one class per high nibble holding triggers (its high nibble times the set of its low
 * nibbles). Past seven such nibbles the rest share a class, a superset that on_trigger
 * narrows with the table. */
static void set_nibble_classes(Prefilter *pf) {
    memset(pf->nibble_lo, 0, sizeof pf->nibble_lo);
    memset(pf->nibble_hi, 0, sizeof pf->nibble_hi);
    unsigned classes = 0;
    for (unsigned hi = 0; hi < 16; hi++) {
        uint8_t bit = 0;
        for (unsigned lo = 0; lo < 16; lo++) {
            if (pf->table[hi * 16 + lo] == T_NONE) continue;
            if (bit == 0) bit = classes < 7 ? (uint8_t)(1u << classes++) : 0x80;
            pf->nibble_lo[lo] |= bit;
        }
        pf->nibble_hi[hi] = bit;
    }
}

#ifdef HAVE_AVX2_CODE
/* A nibble classifier: byte c is in class k when bit k of lo[c & 15] & hi[c >> 4] is set.
 * A class is exact when it is a product of high and low nibbles, a superset otherwise. */
typedef struct {
    uint8_t lo[16], hi[16];
} Classes;

static void add_class(Classes *c, unsigned bit, const char *bytes) {
    for (const char *p = bytes; *p; p++) {
        c->lo[(uint8_t)*p & 15] |= (uint8_t)(1u << bit);
        c->hi[(uint8_t)*p >> 4] |= (uint8_t)(1u << bit);
    }
}

/* Context classes of the bytes whose trigger is kept only when the byte before or after
 * fits: the trigger (FILTERED), the byte before (BEFORE), the byte after (AFTER), by the
 * same bit. Each keeps a superset of what its handler accepts. */
enum { C_J, C_B, C_K, C_W, C_UNDERSCORE, C_A, C_SLASH };
static Classes FILTERED, BEFORE, AFTER, NUMBERS;
static uint8_t BEFORE_ANY, AFTER_ANY; /* the classes with no condition on that side */
enum { N_DIGIT, N_SEPARATOR, N_LETTER };

static void init_classes(void) {
    add_class(&FILTERED, C_J, "J");
    add_class(&FILTERED, C_B, "bB");
    add_class(&FILTERED, C_K, "kK");
    add_class(&FILTERED, C_W, "wW");
    add_class(&FILTERED, C_UNDERSCORE, "_");
    add_class(&FILTERED, C_A, "A");
    add_class(&FILTERED, C_SLASH, "/");
    add_class(&BEFORE, C_J, "y");                   /* eyJ */
    add_class(&BEFORE, C_K, "oO");                  /* tok(en) */
    add_class(&BEFORE, C_W, "aA");                  /* aws */
    add_class(&BEFORE, C_UNDERSCORE, "kcpousrb");   /* [sr]k_, whsec_, gh[pousr]_, github_ */
    add_class(&BEFORE, C_SLASH, "m");               /* hooks.slack.com/ */
    BEFORE_ANY = 1u << C_B | 1u << C_A;
    add_class(&AFTER, C_B, "eEaA");                 /* bearer, basic */
    add_class(&AFTER, C_W, "sS");                   /* aws */
    add_class(&AFTER, C_A, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"); /* A(?:KIA|SIA|...), AIza */
    AFTER_ANY = 1u << C_J | 1u << C_K | 1u << C_UNDERSCORE | 1u << C_SLASH;
    add_class(&NUMBERS, N_DIGIT, "0123456789");
    add_class(&NUMBERS, N_SEPARATOR, " .-()/");
    add_class(&NUMBERS, N_LETTER, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");
}

typedef struct {
    __m256i lo, hi;
} Nibbles;

__attribute__((target("avx2"))) static inline Nibbles nibbles(const uint8_t *p) {
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    __m256i v = _mm256_loadu_si256((const __m256i *)p);
    return (Nibbles){_mm256_and_si256(v, low4), _mm256_and_si256(_mm256_srli_epi16(v, 4), low4)};
}

/* A classifier's tables in registers, loaded once per scan. */
typedef struct {
    __m256i lo, hi;
} Tables;

__attribute__((target("avx2"))) static inline Tables tables(const uint8_t *lo, const uint8_t *hi) {
    return (Tables){_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)lo)),
                    _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)hi))};
}

__attribute__((target("avx2"))) static inline __m256i classify(Tables t, Nibbles n) {
    return _mm256_and_si256(_mm256_shuffle_epi8(t.lo, n.lo), _mm256_shuffle_epi8(t.hi, n.hi));
}

typedef struct {
    Tables triggers, filtered, before, after, numbers;
} Classifiers;

/* The bytes whose classes are not 0. */
__attribute__((target("avx2"))) static inline uint32_t any_of(__m256i classes) {
    return ~(uint32_t)_mm256_movemask_epi8(_mm256_cmpeq_epi8(classes, _mm256_setzero_si256()));
}

/* The bytes in class `bit`. */
#define IN_CLASS(classes, bit) ((uint32_t)_mm256_movemask_epi8(_mm256_slli_epi16((classes), 7 - (bit))))

/* Trigger bytes of 32 at p and the masks the number rule needs. */
__attribute__((target("avx2"), always_inline)) static inline uint32_t triggers32(const Classifiers *c, const uint8_t *p,
                                                                                  uint32_t *digit, uint32_t *sep,
                                                                                  uint32_t *letter) {
    Nibbles at = nibbles(p), before = nibbles(p - 1), after = nibbles(p + 1);
    uint32_t triggers = any_of(classify(c->triggers, at));
    __m256i filtered = classify(c->filtered, at);
    __m256i kept = _mm256_and_si256(
        filtered, _mm256_and_si256(_mm256_or_si256(classify(c->before, before), _mm256_set1_epi8((char)BEFORE_ANY)),
                                   _mm256_or_si256(classify(c->after, after), _mm256_set1_epi8((char)AFTER_ANY))));
    __m256i numbers = classify(c->numbers, at);
    *digit = IN_CLASS(numbers, N_DIGIT);
    *sep = IN_CLASS(numbers, N_SEPARATOR);
    *letter = IN_CLASS(numbers, N_LETTER);
    return triggers & ~(any_of(filtered) & ~any_of(kept));
}

/* The trigger bytes among 64 at p whose handler can act. Per 1.5 kB span the scan meets
 * ~185 trigger bytes, and about half can do nothing: the '_' of an attribute name, the
 * 'b' of "about", lone numbers of one to three digits. The classes above and the number
 * rule below keep a superset of what the handlers accept, so the windows are those of the
 * scalar scan (tests/test_pii_prefilter.py compares both). Bit k is byte k; the rules look
 * at most 2 bytes back and 5 ahead, which the caller keeps inside the 64, and read one
 * byte on either side of them. */
__attribute__((target("avx2"), always_inline)) static inline uint64_t triggers64(const Classifiers *c, const uint8_t *p) {
    uint32_t d0, s0, l0, d1, s1, l1;
    uint64_t triggers = triggers32(c, p, &d0, &s0, &l0) | (uint64_t)triggers32(c, p + 32, &d1, &s1, &l1) << 32;
    uint64_t digit = d0 | (uint64_t)d1 << 32, sep = s0 | (uint64_t)s1 << 32, letter = l0 | (uint64_t)l1 << 32;
    /* Numbers: only a run's first digit starts a cluster, and a lone run of one to three
     * digits (no separator and digit after it) holds no anchor, unless two letters before
     * it and a second digit may start an IBAN (on_digits). */
    uint64_t starts = digit & ~(digit << 1);
    uint64_t len1 = starts & ~(digit >> 1), len2 = starts & (digit >> 1) & ~(digit >> 2),
             len3 = starts & (digit >> 1) & (digit >> 2) & ~(digit >> 3);
    /* a cluster goes on after the run's last digit, at e: sep(e) and (digit(e+1) or sep(e+1) and digit(e+2)) */
    uint64_t goes_on = sep & ((digit >> 1) | ((sep >> 1) & (digit >> 2)));
    uint64_t lone = (len1 & ~(goes_on >> 1)) | (len2 & ~(goes_on >> 2)) | (len3 & ~(goes_on >> 3));
    uint64_t iban = (letter << 2) & (letter << 1) & (digit >> 1);
    return triggers & ~((digit & (digit << 1)) | (lone & ~iban));
}

/* The scan over the bytes from `i` while 64 bytes (and one on either side) can be read
 * around them: each step takes the triggers of 56 bytes, with 2 read before them and 6
 * after for their context. Returns where the scalar scan takes over. */
__attribute__((target("avx2,bmi"))) static size_t scan_blocks_avx2(Scan *s, size_t i) {
    const size_t before = 2, step = 56, after = 6;
    size_t n = s->n, next = i;
    const Classifiers c = {tables(s->pf->nibble_lo, s->pf->nibble_hi), tables(FILTERED.lo, FILTERED.hi),
                           tables(BEFORE.lo, BEFORE.hi), tables(AFTER.lo, AFTER.hi), tables(NUMBERS.lo, NUMBERS.hi)};
    while (i >= before + 1 && i + step + after + 1 <= n) {
        uint64_t mask = triggers64(&c, s->b + i - before) >> before;
        mask &= (1ULL << step) - 1;
        if (next > i) mask &= ~0ULL << (next - i); /* next - i < step: a larger next moved i */
        while (mask) {
            next = on_trigger(s, i + (size_t)_tzcnt_u64(mask));
            if (s->failed) return n;
            if (next >= i + step) break;
            mask &= ~0ULL << (next - i);
        }
        i = next > i + step ? next : i + step;
    }
    return next > i ? next : i;
}
#endif

/* Triggers at [i, limit) one byte at a time; returns where the scan goes on. */
static size_t scan_bytes(Scan *s, size_t i, size_t limit) {
    const uint8_t *b = s->b, *table = s->pf->table;
    while (!s->failed) {
        while (i + 4 <= limit && !(table[b[i]] | table[b[i + 1]] | table[b[i + 2]] | table[b[i + 3]])) i += 4;
        while (i < limit && !table[b[i]]) i++;
        if (i >= limit) break;
        i = on_trigger(s, i);
    }
    return i;
}

/* The scan proper: fills s->found (windows sorted by start, framed keys in order). Needs
 * no GIL; the caller holds pf->lock. */
static void run_scan(Scan *s) {
    size_t i = 0;
    s->found->n_windows = 0;
    s->found->n_keys = 0;
#ifdef HAVE_AVX2_CODE
    if (use_avx2 && s->n >= 80) i = scan_blocks_avx2(s, scan_bytes(s, 0, 3));
#endif
    if (!s->failed) scan_bytes(s, i, s->n);
    if (!s->failed && s->found->n_windows > 1)
        qsort(s->found->windows, s->found->n_windows, sizeof(Window), window_order);
}

/* pf->lock, waiting for it without the GIL when the worker holds it. */
static void lock_tables(Prefilter *pf) {
    if (pthread_mutex_trylock(&pf->lock) == 0) return;
    Py_BEGIN_ALLOW_THREADS
    pthread_mutex_lock(&pf->lock);
    Py_END_ALLOW_THREADS
}

/* A scan in the calling thread, into pf->scratch; -1 with an exception set. */
static int scan_here(Prefilter *pf, PyObject *arg, Py_buffer *view, Scan *s, int text) {
    if (PyObject_GetBuffer(arg, view, PyBUF_SIMPLE) < 0) return -1;
    *s = (Scan){pf, view->buf, (size_t)view->len, &pf->scratch, 0, text};
    lock_tables(pf);
    run_scan(s);
    pthread_mutex_unlock(&pf->lock);
    if (s->failed) {
        PyBuffer_Release(view);
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static int append_tuple(PyObject *list, PyObject *item) {
    if (item == NULL || PyList_Append(list, item) < 0) {
        Py_XDECREF(item);
        return -1;
    }
    Py_DECREF(item);
    return 0;
}

/* (first, key_hits, unknown_keys) from what a scan found; steals `first`. */
static PyObject *with_keys(const Found *f, PyObject *first) {
    PyObject *hits = PyList_New(0), *unknown = PyList_New(0);
    int failed = first == NULL || hits == NULL || unknown == NULL;
    for (size_t k = 0; k < f->n_keys && !failed; k++) {
        const FramedKey *key = &f->keys[k];
        if (key->hit)
            failed = append_tuple(hits, Py_BuildValue("(nn)", (Py_ssize_t)key->start, (Py_ssize_t)key->end)) < 0;
        else
            failed = append_tuple(unknown, Py_BuildValue("(nnnn)", (Py_ssize_t)key->start, (Py_ssize_t)key->end,
                                                         (Py_ssize_t)key->key_start, (Py_ssize_t)key->key_end)) < 0;
    }
    if (failed) {
        Py_XDECREF(first);
        Py_XDECREF(hits);
        Py_XDECREF(unknown);
        return NULL;
    }
    return Py_BuildValue("(NNN)", first, hits, unknown);
}

/* scan()'s result: the windows merged where they overlap, and the framed keys. */
static PyObject *scan_result(const Found *f) {
    PyObject *windows = PyList_New(0);
    if (windows != NULL && f->n_windows) {
        Window cur = f->windows[0];
        for (size_t k = 1; k <= f->n_windows; k++) {
            if (k < f->n_windows && f->windows[k].start <= cur.end) {
                if (f->windows[k].end > cur.end) cur.end = f->windows[k].end;
                continue;
            }
            if (append_tuple(windows, Py_BuildValue("(nn)", (Py_ssize_t)cur.start, (Py_ssize_t)cur.end)) < 0) {
                Py_CLEAR(windows);
                break;
            }
            if (k < f->n_windows) cur = f->windows[k];
        }
    }
    return with_keys(f, windows);
}

PyDoc_STRVAR(scan_doc,
             "scan(buf) -> (windows, key_hits, unknown_keys)\n\n"
             "windows: sorted, disjoint [(start, end)] overlapping every match of the enabled\n"
             "families' anchors (some may overlap none); key_hits: [(start, end)] of framed keys\n"
             "learnt as hits; unknown_keys: [(start, end, key_start, key_end)] of framed keys\n"
             "not learnt yet.");

static PyObject *pf_scan(Prefilter *pf, PyObject *arg) {
    Py_buffer view;
    Scan s;
    if (scan_here(pf, arg, &view, &s, 0) < 0) return NULL;
    PyObject *result = scan_result(s.found);
    PyBuffer_Release(&view);
    return result;
}

/* The region around a window for detector bit `bit`: widened to just after the last byte
 * before it that no match of the detector can hold, and to the first such byte after it.
 * A match that overlaps the window lies inside, and the detector's regex run from the
 * region's start finds the same matches there as from the text's start (none spans the
 * byte before it). */
static size_t region_start(const Prefilter *pf, const uint8_t *b, size_t x, uint32_t bit) {
    while (x > 0 && !(pf->breaks[b[x - 1]] & bit)) x--;
    return x;
}

static size_t region_end(const Prefilter *pf, const uint8_t *b, size_t n, size_t x, uint32_t bit) {
    if (x > n) x = n;
    while (x < n && !(pf->breaks[b[x]] & bit)) x++;
    return x;
}

PyDoc_STRVAR(scan_text_doc,
             "scan_text(buf) -> (work, key_hits, unknown_keys)\n\n"
             "buf is one string value. work: [(index, start, end, last)] for the detectors given\n"
             "to text_detectors(), in that order, each region sorted and disjoint and holding every\n"
             "match of that detector whose anchor the scan found; last: the end of the region's\n"
             "last window (a search that has passed it can find no more). For a detector given as\n"
             "native, [(index, start, end)] instead: its validated matches in those regions.\n"
             "key_hits and unknown_keys as scan().");

/* The detectors _matchers.h finds by itself, by bit index. */
_Static_assert(D_EMAIL == 1 << 0 && D_CREDIT_CARD == 1 << 1, "NATIVE's indexes follow the D_* bits");
_Static_assert(D_OPENAI == 1 << 7 && D_ANTHROPIC == 1 << 8 && D_AWS_ID == 1 << 9, "NATIVE's indexes follow the D_* bits");
_Static_assert(D_ASSIGNMENT == 1 << 22, "NATIVE's indexes follow the D_* bits");
static const Native NATIVE[N_DETECTOR_BITS] = {
    [0] = {m_email, m_email_ok},              /* D_EMAIL */
    [1] = {m_card, m_card_ok},                /* D_CREDIT_CARD */
    [7] = {m_openai, m_random_token_ok},      /* D_OPENAI */
    [8] = {m_anthropic, NULL},                /* D_ANTHROPIC */
    [9] = {m_aws_id, NULL},                   /* D_AWS_ID */
    [22] = {m_assignment, m_assignment_ok},   /* D_ASSIGNMENT */
};

/* A region's work: (index, start, end, last) for RE2; or, for a detector found here, one
 * (index, start, end) per hit, found as Redactor._find_in finds them (_matchers.h). */
static int append_region(const Prefilter *pf, PyObject *work, unsigned t, const uint8_t *b, size_t n, size_t start,
                         size_t end, size_t last) {
    Py_ssize_t index = pf->text_index[t];
    if (last > end) last = end;
    if (!pf->text_native[t])
        return append_tuple(work,
                            Py_BuildValue("(nnnn)", index, (Py_ssize_t)start, (Py_ssize_t)end, (Py_ssize_t)last));
    const Native *native = &NATIVE[pf->text_bits[t]];
    size_t pos = start, s, e;
    while (pos < end && native->match(b, n, pos, end, &s, &e)) {
        if ((native->valid == NULL || native->valid(&pf->native, b, s, e)) &&
            append_tuple(work, Py_BuildValue("(nnn)", index, (Py_ssize_t)s, (Py_ssize_t)e)) < 0)
            return -1;
        pos = e; /* no match here is empty */
        if (pos >= last) break;
    }
    return 0;
}

static PyObject *pf_scan_text(Prefilter *pf, PyObject *arg) {
    Py_buffer view;
    Scan s;
    if (scan_here(pf, arg, &view, &s, 1) < 0) return NULL;
    const Found *f = s.found;
    PyObject *work = PyList_New(0);
    uint32_t present = 0;
    for (size_t k = 0; k < f->n_windows; k++) present |= f->windows[k].dets;
    for (unsigned t = 0; t < pf->n_text && present && work != NULL; t++) {
        uint32_t bit = 1u << pf->text_bits[t];
        if (!(present & bit)) continue;
        size_t start = 0, end = 0, last = 0;
        int open = 0;
        for (size_t k = 0; k < f->n_windows; k++) {
            const Window *w = &f->windows[k];
            if (!(w->dets & bit)) continue;
            if (open && w->start <= end) {
                if (w->end > end) end = region_end(pf, s.b, s.n, w->end, bit);
                if (w->end > last) last = w->end;
                continue;
            }
            if (open && append_region(pf, work, t, s.b, s.n, start, end, last) < 0) {
                Py_CLEAR(work);
                break;
            }
            start = region_start(pf, s.b, w->start, bit);
            end = region_end(pf, s.b, s.n, w->end, bit);
            last = w->end;
            open = 1;
        }
        if (work != NULL && open && append_region(pf, work, t, s.b, s.n, start, end, last) < 0) Py_CLEAR(work);
    }
    PyObject *result = with_keys(f, work);
    PyBuffer_Release(&view);
    return result;
}

PyDoc_STRVAR(text_detectors_doc,
             "text_detectors(entries) -> None: the detectors scan_text() reports, in order, as\n"
             "[(bit, index, breakers[, native])]: the detector's bit (DETECTOR_BITS), the index\n"
             "reported with its regions, and None or 256 bytes marking with a non-zero byte the\n"
             "bytes no match of the detector can contain (its regions end at them; without, a\n"
             "region is the whole text); native: found here (NATIVE_DETECTORS, after\n"
             "native_checks()) rather than reported as regions.");

static PyObject *pf_text_detectors(Prefilter *pf, PyObject *entries) {
    PyObject *seq = PySequence_Fast(entries, "text_detectors: a sequence of (bit, index, breakers)");
    if (seq == NULL) return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    if (count > N_DETECTOR_BITS) {
        Py_DECREF(seq);
        PyErr_SetString(PyExc_ValueError, "text_detectors: too many detectors");
        return NULL;
    }
    uint32_t breaks[256] = {0};
    unsigned bits[N_DETECTOR_BITS];
    Py_ssize_t indexes[N_DETECTOR_BITS];
    uint8_t native[N_DETECTOR_BITS];
    for (Py_ssize_t k = 0; k < count; k++) {
        unsigned int d;
        Py_ssize_t index;
        PyObject *table;
        int is_native = 0;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, k), "InO|p:text_detectors", &d, &index, &table,
                              &is_native)) {
            Py_DECREF(seq);
            return NULL;
        }
        if (d >= N_DETECTOR_BITS || (table != Py_None && (!PyBytes_Check(table) || PyBytes_GET_SIZE(table) != 256))) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_ValueError, "text_detectors: (bit < 23, index, None or 256 bytes[, native])");
            return NULL;
        }
        if (is_native && (NATIVE[d].match == NULL || !pf->native.set)) {
            Py_DECREF(seq);
            PyErr_SetString(PyExc_ValueError,
                            NATIVE[d].match == NULL ? "text_detectors: no native matcher for this detector"
                                                    : "text_detectors: native_checks() first");
            return NULL;
        }
        bits[k] = d;
        indexes[k] = index;
        native[k] = (uint8_t)is_native;
        if (table != Py_None) {
            const uint8_t *t = (const uint8_t *)PyBytes_AS_STRING(table);
            for (size_t c = 0; c < 256; c++)
                if (t[c]) breaks[c] |= 1u << d;
        }
    }
    Py_DECREF(seq);
    memcpy(pf->breaks, breaks, sizeof breaks);
    memcpy(pf->text_bits, bits, sizeof(unsigned) * (size_t)count);
    memcpy(pf->text_index, indexes, sizeof(Py_ssize_t) * (size_t)count);
    memcpy(pf->text_native, native, (size_t)count);
    pf->n_text = (unsigned)count;
    Py_RETURN_NONE;
}

/* A sequence of str into `out` (at most `max`, each of 1-15 bytes, lowercase ASCII too
 * when `lowercase_ascii`) and its count into `*count`: 0, or -1 with `error` raised. */
static int read_words(PyObject *words, const char *error, int lowercase_ascii, NativeWord *out, unsigned max,
                      unsigned *count) {
    PyObject *seq = PySequence_Fast(words, error);
    if (seq == NULL) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t k = 0; k < n; k++) {
        Py_ssize_t len;
        const char *text = PyUnicode_AsUTF8AndSize(PySequence_Fast_GET_ITEM(seq, k), &len);
        int fits = text != NULL && n <= (Py_ssize_t)max && len >= 1 && len < (Py_ssize_t)sizeof out[0].text;
        for (Py_ssize_t i = 0; fits && lowercase_ascii && i < len; i++)
            fits = (uint8_t)text[i] >= 0x20 && (uint8_t)text[i] < 0x80 && !is_upper((uint8_t)text[i]);
        if (!fits) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, error);
            Py_DECREF(seq);
            return -1;
        }
        memcpy(out[k].text, text, (size_t)len);
        out[k].len = (uint8_t)len;
    }
    *count = (unsigned)n;
    Py_DECREF(seq);
    return 0;
}

PyDoc_STRVAR(native_checks_doc,
             "native_checks(card_prefixes, rejected_tlds, placeholders) -> None: the tables the\n"
             "native validators read, from detectors.py: card issuer prefixes as (digits, min\n"
             "length, max length), the top-level domains (lowercase) that make an e-mail address a\n"
             "file name, and the values (lowercase ASCII) a secret assignment does not count.");

static PyObject *pf_native_checks(Prefilter *pf, PyObject *args) {
    PyObject *prefixes, *tlds, *placeholders;
    if (!PyArg_ParseTuple(args, "OOO:native_checks", &prefixes, &tlds, &placeholders)) return NULL;
    NativeChecks checks = {0};
    PyObject *seq = PySequence_Fast(prefixes, "native_checks: card_prefixes must be a sequence");
    if (seq == NULL) return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    for (Py_ssize_t k = 0; k < count; k++) {
        const char *digits;
        Py_ssize_t len;
        unsigned char lo, hi;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, k), "s#bb:native_checks", &digits, &len, &lo, &hi) ||
            count > MAX_CARD_PREFIXES || len < 1 || len >= (Py_ssize_t)sizeof checks.card[0].digits) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "native_checks: up to 64 prefixes of 1-7 digits");
            Py_DECREF(seq);
            return NULL;
        }
        memcpy(checks.card[k].digits, digits, (size_t)len);
        checks.card[k].len = (uint8_t)len;
        checks.card[k].lo = lo;
        checks.card[k].hi = hi;
    }
    checks.n_card = (unsigned)count;
    Py_DECREF(seq);
    if (read_words(tlds, "native_checks: up to 32 domains of 1-15 bytes", 0, checks.tld, MAX_REJECTED_TLDS,
                   &checks.n_tld) < 0 ||
        read_words(placeholders, "native_checks: up to 16 placeholders of 1-15 lowercase ASCII bytes", 1,
                   checks.placeholder, MAX_PLACEHOLDERS, &checks.n_placeholder) < 0)
        return NULL;
    checks.set = 1;
    lock_tables(pf);
    pf->native = checks;
    pthread_mutex_unlock(&pf->lock);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ key decisions */

static void clear_keys(Prefilter *pf) {
    if (pf->keys == NULL) return;
    for (size_t i = 0; i < pf->key_slots; i++) PyMem_RawFree(pf->keys[i].bytes);
    memset(pf->keys, 0, pf->key_slots * sizeof(KeySlot));
    pf->key_count = 0;
}

/* The slot of `key` in `keys` (n slots): its own, or the empty one it would take. */
static KeySlot *key_slot(KeySlot *keys, size_t n, uint64_t h, const uint8_t *key, size_t len) {
    for (size_t i = h & (n - 1);; i = (i + 1) & (n - 1)) {
        KeySlot *slot = &keys[i];
        if (slot->decision == 0 ||
            (slot->hash == h && slot->len == len && memcmp(slot_key(slot), key, len) == 0))
            return slot;
    }
}

/* Doubles the table (rehashing every slot); -1 without memory, the table unchanged. */
static int grow_keys(Prefilter *pf) {
    size_t n = pf->key_slots * 2;
    KeySlot *keys = PyMem_RawCalloc(n, sizeof(KeySlot));
    if (keys == NULL) return -1;
    for (size_t i = 0; i < pf->key_slots; i++) {
        const KeySlot *old = &pf->keys[i];
        if (old->decision == 0) continue;
        *key_slot(keys, n, old->hash, slot_key(old), old->len) = *old;
    }
    PyMem_RawFree(pf->keys);
    pf->keys = keys;
    pf->key_slots = n;
    return 0;
}

PyDoc_STRVAR(learn_doc, "learn(key, hit) -> None: remembers whether a key rule matches `key` (bytes).");

/* Records a decision, with pf->lock held; -1 without memory. */
static int learn_key(Prefilter *pf, const uint8_t *key, size_t len, int hit) {
    /* Keys are low-cardinality; a flood of distinct ones (quoted prose before a colon)
     * starts the cache over rather than growing it. */
    if (pf->key_count >= KEY_MAX_ENTRIES) clear_keys(pf);
    if ((pf->key_count + 1) * 2 > pf->key_slots && pf->key_slots < KEY_MAX_SLOTS && grow_keys(pf) < 0) return -1;
    uint64_t h = hash_bytes(key, len);
    KeySlot *slot = key_slot(pf->keys, pf->key_slots, h, key, len);
    uint8_t decision = hit ? KEY_HIT : KEY_CLEAN;
    if (slot->decision != 0) {
        slot->decision = decision;
        return 0;
    }
    KeySlot fresh = {h, NULL, (uint32_t)len, decision, {0}};
    if (len > KEY_INLINE) {
        fresh.bytes = PyMem_RawMalloc(len);
        if (fresh.bytes == NULL) return -1;
        memcpy(fresh.bytes, key, len);
    } else {
        memcpy(fresh.inline_bytes, key, len);
    }
    *slot = fresh;
    pf->key_count++;
    return 0;
}

static PyObject *pf_learn(Prefilter *pf, PyObject *args) {
    Py_buffer key;
    int hit;
    if (!PyArg_ParseTuple(args, "y*p:learn", &key, &hit)) return NULL;
    int failed = 0;
    if ((size_t)key.len <= KEY_MAX_LEN) {
        lock_tables(pf);
        failed = learn_key(pf, key.buf, (size_t)key.len, hit) < 0;
        pthread_mutex_unlock(&pf->lock);
    }
    PyBuffer_Release(&key);
    if (failed) return PyErr_NoMemory();
    Py_RETURN_NONE;
}

static PyObject *pf_key_count(Prefilter *pf, PyObject *unused) { return PyLong_FromSize_t(pf->key_count); }

/* ------------------------------------------------------------------ type */

static void set_trigger(Prefilter *pf, uint32_t family, const char *bytes, uint8_t code) {
    if (!(pf->families & family)) return;
    for (const char *c = bytes; *c; c++) pf->table[(uint8_t)*c] = code;
}

static int pf_init(Prefilter *pf, PyObject *args, PyObject *kwargs) {
    unsigned long families;
    const char *countries = NULL;
    Py_ssize_t countries_len = 0;
    if (!PyArg_ParseTuple(args, "k|y#:Prefilter", &families, &countries, &countries_len)) return -1;
    for (Py_ssize_t i = 0; countries != NULL && i < countries_len; i += 2) {
        if (i + 1 == countries_len || !is_upper((uint8_t)countries[i]) || !is_upper((uint8_t)countries[i + 1])) {
            PyErr_SetString(PyExc_ValueError, "Prefilter: IBAN countries are pairs of letters A-Z");
            return -1;
        }
    }
    KeySlot *keys = pf->keys != NULL ? NULL : PyMem_RawCalloc(KEY_MIN_SLOTS, sizeof(KeySlot));
    if (pf->keys == NULL && keys == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    lock_tables(pf); /* a second __init__ while the worker scans */
    pf->families = (uint32_t)families;
    memset(pf->iban_country, countries == NULL, sizeof pf->iban_country);
    for (Py_ssize_t i = 0; countries != NULL && i < countries_len; i += 2)
        pf->iban_country[(countries[i] - 'A') * 26 + (countries[i + 1] - 'A')] = 1;
    memset(pf->table, T_NONE, sizeof pf->table);
    memset(pf->breaks, 0, sizeof pf->breaks);
    pf->n_text = 0;
    set_trigger(pf, F_DIGITS | F_PHONE_ZERO | F_PHONE_SEVEN | F_IBAN, "0123456789", T_DIGIT);
    set_trigger(pf, F_EMAIL, "@", T_AT);
    set_trigger(pf, F_IPV6 | F_URL_CREDENTIALS | F_ASSIGNMENT | F_KEYS, ":", T_COLON);
    set_trigger(pf, F_URL_TOKEN | F_ASSIGNMENT, "=", T_EQUALS);
    set_trigger(pf, F_SK | F_GITLAB | F_SLACK | F_PEM, "-", T_DASH);
    set_trigger(pf, F_STRIPE | F_GITHUB, "_", T_UNDERSCORE);
    set_trigger(pf, F_AWS_ID | F_GOOGLE, "A", T_UPPER_A);
    set_trigger(pf, F_JWT, "J", T_UPPER_J);
    set_trigger(pf, F_AWS_SECRET, "wW", T_W);
    set_trigger(pf, F_BEARER | F_BASIC, "bB", T_B);
    set_trigger(pf, F_BEARER, "kK", T_K);
    set_trigger(pf, F_SLACK, "/", T_SLASH);
    set_trigger(pf, F_KEYS, "\x12", T_VALUE_TAG);
    set_nibble_classes(pf);
    if (keys != NULL) {
        pf->keys = keys;
        pf->key_slots = KEY_MIN_SLOTS;
    } else {
        clear_keys(pf);
    }
    pthread_mutex_unlock(&pf->lock);
    return 0;
}

/* ------------------------------------------------------------------ the worker thread */

/* The request scan costs ~1.7-3 us per 1.5 kB span (by CPU), 11-20% of the receiver's
 * event-loop thread at 10% PII, and needs no Python object: the worker runs it on another
 * core while that thread decodes the request and serves others. Python's executors would not do: a
 * thread that must take the GIL back to return its result waits for the switch interval
 * (5 ms) while the loop's thread runs Python, a hundred scans' worth. This one never takes
 * the GIL; its results are collected by the GIL holder (completed), woken by the pipe. */

static void push_job(Job **head, Job **tail, Job *job) {
    job->next = NULL;
    if (*tail != NULL)
        (*tail)->next = job;
    else
        *head = job;
    *tail = job;
}

static void scan_job(Prefilter *pf, Job *job) {
    Scan s = {pf, job->view.buf, (size_t)job->view.len, &job->found, 0, 0};
    pthread_mutex_lock(&pf->lock);
    run_scan(&s);
    pthread_mutex_unlock(&pf->lock);
    job->failed = s.failed;
}

/* With queue_lock held: the job is done; the pipe gets a byte unless one is unread. */
static void finish_job(Prefilter *pf, Job *job) {
    push_job(&pf->done, &pf->done_tail, job);
    if (!pf->signalled && pf->ready_fds[1] >= 0) {
        pf->signalled = 1;
        ssize_t written;
        do written = write(pf->ready_fds[1], "", 1);
        while (written < 0 && errno == EINTR);
    }
}

static void *worker_main(void *arg) {
    Prefilter *pf = arg;
    pthread_mutex_lock(&pf->queue_lock);
    for (;;) {
        while (pf->pending == NULL && !pf->stop) pthread_cond_wait(&pf->queue_cond, &pf->queue_lock);
        if (pf->stop) break;
        Job *job = pf->running = pf->pending;
        pf->pending = job->next;
        if (pf->pending == NULL) pf->pending_tail = NULL;
        pthread_mutex_unlock(&pf->queue_lock);
        scan_job(pf, job);
        pthread_mutex_lock(&pf->queue_lock);
        pf->running = NULL;
        finish_job(pf, job);
    }
    pthread_mutex_unlock(&pf->queue_lock);
    return NULL;
}

static void close_pipe(Prefilter *pf) {
    for (int k = 0; k < 2; k++) {
        if (pf->ready_fds[k] >= 0) close(pf->ready_fds[k]);
        pf->ready_fds[k] = -1;
    }
}

/* The pipe, non-blocking and closed on exec; -1 with an exception set. */
static int open_pipe(Prefilter *pf) {
    if (pf->ready_fds[0] >= 0) return 0;
    int fds[2];
    if (pipe(fds) < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    for (int k = 0; k < 2; k++) {
        if (fcntl(fds[k], F_SETFL, O_NONBLOCK) < 0 || fcntl(fds[k], F_SETFD, FD_CLOEXEC) < 0) {
            PyErr_SetFromErrno(PyExc_OSError);
            close(fds[0]);
            close(fds[1]);
            return -1;
        }
    }
    pf->ready_fds[0] = fds[0];
    pf->ready_fds[1] = fds[1];
    return 0;
}

/* In a forked child the worker stayed in the parent, maybe holding a lock: the locks are
 * made anew, the jobs it had not scanned are scanned here, and the child gets a pipe of
 * its own (ready_fd() changes) and a worker at its next submit. */
static int after_fork(Prefilter *pf) {
    if (pf->worker_pid == 0 || pf->worker_pid == getpid()) return 0;
    pthread_mutex_init(&pf->lock, NULL);
    pthread_mutex_init(&pf->queue_lock, NULL);
    pthread_cond_init(&pf->queue_cond, NULL);
    pf->worker_pid = 0;
    /* The new pipe is opened before the old one is closed, so that its numbers differ:
     * BackgroundScans watches the pipe anew when the number changes. */
    int old_fds[2] = {pf->ready_fds[0], pf->ready_fds[1]};
    pf->ready_fds[0] = pf->ready_fds[1] = -1;
    pf->signalled = 0;
    int opened = open_pipe(pf);
    for (int k = 0; k < 2; k++)
        if (old_fds[k] >= 0) close(old_fds[k]);
    if (opened < 0) return -1;
    if (pf->running != NULL) { /* the job the parent's worker was scanning */
        pf->running->next = pf->pending;
        pf->pending = pf->running;
        if (pf->pending_tail == NULL) pf->pending_tail = pf->running;
        pf->running = NULL;
    }
    while (pf->pending != NULL) {
        Job *job = pf->pending;
        pf->pending = job->next;
        scan_job(pf, job);
        finish_job(pf, job);
    }
    pf->pending_tail = NULL;
    return 0;
}

static void free_job(Job *job) {
    PyBuffer_Release(&job->view);
    free_found(&job->found);
    PyMem_RawFree(job);
}

static void free_jobs(Job *job) {
    while (job != NULL) {
        Job *next = job->next;
        free_job(job);
        job = next;
    }
}

PyDoc_STRVAR(submit_doc,
             "submit(buf) -> int: hands buf to the worker thread, which scans it as scan() does\n"
             "without the GIL (started on first use); returns the job's id. Its result comes from\n"
             "completed(); ready_fd() becomes readable when one is there. buf is held until then.");

static PyObject *pf_submit(Prefilter *pf, PyObject *arg) {
    if (after_fork(pf) < 0 || open_pipe(pf) < 0) return NULL;
    Job *job = PyMem_RawCalloc(1, sizeof(Job));
    if (job == NULL) return PyErr_NoMemory();
    if (PyObject_GetBuffer(arg, &job->view, PyBUF_SIMPLE) < 0) {
        PyMem_RawFree(job);
        return NULL;
    }
    job->id = ++pf->next_id;
    pthread_mutex_lock(&pf->queue_lock); /* the worker holds it only briefly, never the GIL */
    if (pf->worker_pid == 0) {
        pf->stop = 0;
        if (pthread_create(&pf->worker, NULL, worker_main, pf) == 0) pf->worker_pid = getpid();
    }
    if (pf->worker_pid != 0) {
        push_job(&pf->pending, &pf->pending_tail, job);
        pthread_cond_signal(&pf->queue_cond);
        pthread_mutex_unlock(&pf->queue_lock);
    } else {
        /* No thread could be started: scanned here, with the same result. */
        pthread_mutex_unlock(&pf->queue_lock);
        scan_job(pf, job);
        pthread_mutex_lock(&pf->queue_lock);
        finish_job(pf, job);
        pthread_mutex_unlock(&pf->queue_lock);
    }
    return PyLong_FromUnsignedLongLong(job->id);
}

PyDoc_STRVAR(completed_doc,
             "completed() -> [(id, result)]: the jobs scanned since the last call, in the order\n"
             "they were submitted; result as scan() returns it, or None when the scan ran out of\n"
             "memory. Empties the pipe of ready_fd().");

static PyObject *pf_completed(Prefilter *pf, PyObject *unused) {
    if (after_fork(pf) < 0) return NULL;
    if (pf->ready_fds[0] >= 0) {
        /* Emptied before the list is taken: a result done after that writes again. */
        char drain[64];
        while (read(pf->ready_fds[0], drain, sizeof drain) > 0) {
        }
    }
    pthread_mutex_lock(&pf->queue_lock);
    Job *jobs = pf->done;
    pf->done = pf->done_tail = NULL;
    pf->signalled = 0;
    pthread_mutex_unlock(&pf->queue_lock);
    PyObject *out = PyList_New(0);
    for (Job *job = jobs; job != NULL && out != NULL; job = job->next) {
        PyObject *result = job->failed ? Py_NewRef(Py_None) : scan_result(&job->found);
        if (result == NULL || append_tuple(out, Py_BuildValue("(KN)", job->id, result)) < 0) Py_CLEAR(out);
    }
    free_jobs(jobs);
    return out;
}

PyDoc_STRVAR(ready_fd_doc,
             "ready_fd() -> int: a file descriptor that is readable when completed() has results\n"
             "(for an event loop's add_reader); a new one after a fork.");

static PyObject *pf_ready_fd(Prefilter *pf, PyObject *unused) {
    if (after_fork(pf) < 0 || open_pipe(pf) < 0) return NULL;
    return PyLong_FromLong(pf->ready_fds[0]);
}

/* fork() copies the queues as the worker left them, and it may be halfway through moving
 * a job (pending -> running -> done) with queue_lock held: the child would lose that job,
 * and a request would wait for it forever. The handlers below hold every prefilter's
 * queue_lock across fork() (the worker holds it only between steps, never while scanning),
 * so the child sees each job in exactly one place. Registered once; every prefilter is on
 * the list from creation to deallocation, both with the GIL held. */
static pthread_mutex_t live_lock = PTHREAD_MUTEX_INITIALIZER;
static Prefilter *live_head;

static void fork_prepare(void) {
    pthread_mutex_lock(&live_lock);
    for (Prefilter *pf = live_head; pf != NULL; pf = pf->live_next) pthread_mutex_lock(&pf->queue_lock);
}

static void fork_done(void) {
    for (Prefilter *pf = live_head; pf != NULL; pf = pf->live_next) pthread_mutex_unlock(&pf->queue_lock);
    pthread_mutex_unlock(&live_lock);
}

static void link_live(Prefilter *pf) {
    pthread_mutex_lock(&live_lock);
    pf->live_prev = NULL;
    pf->live_next = live_head;
    if (live_head != NULL) live_head->live_prev = pf;
    live_head = pf;
    pthread_mutex_unlock(&live_lock);
}

static void unlink_live(Prefilter *pf) {
    pthread_mutex_lock(&live_lock);
    if (pf->live_prev != NULL) pf->live_prev->live_next = pf->live_next;
    else if (live_head == pf) live_head = pf->live_next;
    if (pf->live_next != NULL) pf->live_next->live_prev = pf->live_prev;
    pf->live_prev = pf->live_next = NULL;
    pthread_mutex_unlock(&live_lock);
}

static PyObject *pf_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    Prefilter *pf = (Prefilter *)PyType_GenericNew(type, args, kwargs);
    if (pf == NULL) return NULL;
    pthread_mutex_init(&pf->lock, NULL);
    pthread_mutex_init(&pf->queue_lock, NULL);
    pthread_cond_init(&pf->queue_cond, NULL);
    pf->ready_fds[0] = pf->ready_fds[1] = -1;
    link_live(pf);
    return (PyObject *)pf;
}

static void pf_dealloc(Prefilter *pf) {
    unlink_live(pf);
    if (pf->worker_pid != 0 && pf->worker_pid == getpid()) {
        /* The worker holds no Python object and never takes the GIL: joined with it held. */
        pthread_mutex_lock(&pf->queue_lock);
        pf->stop = 1;
        pthread_cond_signal(&pf->queue_cond);
        pthread_mutex_unlock(&pf->queue_lock);
        pthread_join(pf->worker, NULL);
    }
    if (pf->running != NULL) { /* a forked child's: the parent's worker was scanning it */
        free_job(pf->running);
        pf->running = NULL;
    }
    free_jobs(pf->pending);
    free_jobs(pf->done);
    close_pipe(pf);
    clear_keys(pf);
    PyMem_RawFree(pf->keys);
    free_found(&pf->scratch);
    if (pf->worker_pid == 0 || pf->worker_pid == getpid()) {
        pthread_mutex_destroy(&pf->lock);
        pthread_mutex_destroy(&pf->queue_lock);
        pthread_cond_destroy(&pf->queue_cond);
    }
    Py_TYPE(pf)->tp_free((PyObject *)pf);
}

PyDoc_STRVAR(use_vector_doc,
             "use_vector(on) -> bool: lets the scans use the CPU's AVX2 code (on) or the scalar\n"
             "code (off; for tests and benchmarks); returns whether the AVX2 code is now used.");

static PyObject *use_vector(PyObject *module, PyObject *arg) {
    int on = PyObject_IsTrue(arg);
    if (on < 0) return NULL;
#ifdef HAVE_AVX2_CODE
    use_avx2 = on && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi") &&
               __builtin_cpu_supports("lzcnt");
#endif
    return PyBool_FromLong(use_avx2);
}

#include "_masker.h"

PyDoc_STRVAR(inside_json_strings_doc,
             "inside_json_strings(buf, spans) -> bool\n\n"
             "Whether every [start, end) of `spans` (sorted by start) lies inside one string\n"
             "literal of the JSON text `buf`, away from escapes: it holds no quote or\n"
             "backslash, the byte before it is no backslash, and an odd number of quotes\n"
             "precedes it. False whenever `buf` holds an escaped quote (parity is then not\n"
             "exact). engine.json_strings_hold is the reference, used without a C pass.");

/* Python's loop over the hits cost ~2 us per flagged JSON string (a count and three
 * searches per hit), a tenth of its redaction. */
static PyObject *inside_json_strings(PyObject *module, PyObject *args) {
    Py_buffer view;
    PyObject *spans;
    if (!PyArg_ParseTuple(args, "y*O!:inside_json_strings", &view, &PyList_Type, &spans)) return NULL;
    size_t n = (size_t)view.len, count = (size_t)PyList_GET_SIZE(spans);
    MaskHit *hits = PyMem_Malloc((count + 1) * sizeof *hits);
    if (hits == NULL) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    PyObject *result = NULL;
    for (size_t k = 0; k < count; k++) {
        Py_ssize_t start, end;
        if (!PyArg_ParseTuple(PyList_GET_ITEM(spans, k), "nn", &start, &end)) goto done;
        if (start < 0 || end < start || (size_t)end > n) {
            PyErr_SetString(PyExc_ValueError, "a span needs 0 <= start <= end <= len(buf)");
            goto done;
        }
        hits[k] = (MaskHit){(size_t)start, (size_t)end, 0, 0, (uint32_t)k};
    }
    result = PyBool_FromLong(spans_inside_json(view.buf, n, hits, count));
done:
    PyMem_Free(hits);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef module_methods[] = {
    {"use_vector", (PyCFunction)use_vector, METH_O, use_vector_doc},
    {"inside_json_strings", (PyCFunction)inside_json_strings, METH_VARARGS, inside_json_strings_doc},
    {NULL, NULL, 0, NULL},
};

static PyMethodDef pf_methods[] = {
    {"scan", (PyCFunction)pf_scan, METH_O, scan_doc},
    {"scan_text", (PyCFunction)pf_scan_text, METH_O, scan_text_doc},
    {"text_detectors", (PyCFunction)pf_text_detectors, METH_O, text_detectors_doc},
    {"native_checks", (PyCFunction)pf_native_checks, METH_VARARGS, native_checks_doc},
    {"learn", (PyCFunction)pf_learn, METH_VARARGS, learn_doc},
    {"key_count", (PyCFunction)pf_key_count, METH_NOARGS, "Keys with a learnt decision."},
    {"submit", (PyCFunction)pf_submit, METH_O, submit_doc},
    {"completed", (PyCFunction)pf_completed, METH_NOARGS, completed_doc},
    {"ready_fd", (PyCFunction)pf_ready_fd, METH_NOARGS, ready_fd_doc},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject PrefilterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "processors.pii_redaction._prefilter.Prefilter",
    .tp_basicsize = sizeof(Prefilter),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Prefilter(families, iban_countries=None): windows of a buffer that may hold a built-in\n"
              "anchor's match. iban_countries: the IBAN registry's country codes, concatenated\n"
              "(b'ADAE...'); without it any two letters may start an IBAN.",
    .tp_new = pf_new,
    .tp_init = (initproc)pf_init,
    .tp_dealloc = (destructor)pf_dealloc,
    .tp_methods = pf_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_prefilter", "pii_redaction's request prefilter for the built-in detectors.", -1,
    module_methods, NULL, NULL, NULL, NULL,
};

typedef struct {
    const char *name;
    uint32_t value;
} Named;

/* m.<attr> = {name: value}, or {name: values[i]} when `values` is given. */
static int add_int_dict(PyObject *m, const char *attr, const Named *named, const unsigned long *values, size_t n) {
    PyObject *dict = PyDict_New();
    if (dict == NULL) return -1;
    for (size_t i = 0; i < n; i++) {
        PyObject *v = PyLong_FromUnsignedLong(values != NULL ? values[i] : named[i].value);
        if (v == NULL || PyDict_SetItemString(dict, named[i].name, v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(dict);
            return -1;
        }
        Py_DECREF(v);
    }
    if (PyModule_AddObject(m, attr, dict) < 0) {
        Py_DECREF(dict);
        return -1;
    }
    return 0;
}

PyMODINIT_FUNC PyInit__prefilter(void) {
    if (PyType_Ready(&PrefilterType) < 0 || PyType_Ready(&MaskerType) < 0) return NULL;
    static int fork_handlers;
    if (!fork_handlers) {
        if (pthread_atfork(fork_prepare, fork_done, fork_done) != 0) {
            PyErr_SetString(PyExc_RuntimeError, "_prefilter: pthread_atfork failed");
            return NULL;
        }
        fork_handlers = 1;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
#ifdef HAVE_AVX2_CODE
    init_classes();
#endif
    Py_XDECREF(use_vector(m, Py_True));
    if (PyModule_AddObjectRef(m, "Prefilter", (PyObject *)&PrefilterType) < 0 ||
        PyModule_AddObjectRef(m, "Masker", (PyObject *)&MaskerType) < 0)
        goto fail;
    static const Named families[] = {
        {"email", F_EMAIL},
        {"digits", F_DIGITS},
        {"iban", F_IBAN},
        {"ipv6", F_IPV6},
        {"sk", F_SK},
        {"aws_id", F_AWS_ID},
        {"aws_secret", F_AWS_SECRET},
        {"github", F_GITHUB},
        {"gitlab", F_GITLAB},
        {"slack", F_SLACK},
        {"stripe", F_STRIPE},
        {"google", F_GOOGLE},
        {"jwt", F_JWT},
        {"pem", F_PEM},
        {"bearer", F_BEARER},
        {"basic", F_BASIC},
        {"url_credentials", F_URL_CREDENTIALS},
        {"url_token", F_URL_TOKEN},
        {"assignment", F_ASSIGNMENT},
        {"keys", F_KEYS},
        {"phone_zero", F_PHONE_ZERO},
        {"phone_seven", F_PHONE_SEVEN},
        {"ipv4_public", F_IPV4_PUBLIC},
    };
    static const Named detectors[] = {
        {"email", D_EMAIL},
        {"credit_card", D_CREDIT_CARD},
        {"us_ssn", D_US_SSN},
        {"phone", D_PHONE},
        {"ipv4", D_IPV4},
        {"iban", D_IBAN},
        {"ipv6", D_IPV6},
        {"openai_api_key", D_OPENAI},
        {"anthropic_api_key", D_ANTHROPIC},
        {"aws_access_key_id", D_AWS_ID},
        {"aws_secret_access_key", D_AWS_SECRET},
        {"github_token", D_GITHUB},
        {"gitlab_token", D_GITLAB},
        {"slack_token", D_SLACK},
        {"stripe_key", D_STRIPE},
        {"google_api_key", D_GOOGLE},
        {"jwt", D_JWT},
        {"private_key", D_PEM},
        {"bearer_token", D_BEARER},
        {"basic_auth", D_BASIC},
        {"url_credentials", D_URL_CREDENTIALS},
        {"url_token_param", D_URL_TOKEN},
        {"secret_assignment", D_ASSIGNMENT},
    };
    /* The detectors by bit index (scan_text, text_detectors), the families by flag. */
    unsigned long indexes[sizeof detectors / sizeof detectors[0]];
    for (size_t i = 0; i < sizeof detectors / sizeof detectors[0]; i++) {
        indexes[i] = 0;
        while ((1u << indexes[i]) != detectors[i].value) indexes[i]++;
    }
    if (add_int_dict(m, "FAMILIES", families, NULL, sizeof families / sizeof families[0]) < 0 ||
        add_int_dict(m, "DETECTOR_BITS", detectors, indexes, sizeof detectors / sizeof detectors[0]) < 0)
        goto fail;
    PyObject *native = PyFrozenSet_New(NULL);
    if (native == NULL) goto fail;
    for (size_t i = 0; i < sizeof detectors / sizeof detectors[0]; i++) {
        if (NATIVE[indexes[i]].match == NULL) continue;
        PyObject *name = PyUnicode_FromString(detectors[i].name);
        if (name == NULL || PySet_Add(native, name) < 0) {
            Py_XDECREF(name);
            Py_DECREF(native);
            goto fail;
        }
        Py_DECREF(name);
    }
    if (PyModule_AddObject(m, "NATIVE_DETECTORS", native) < 0) {
        Py_DECREF(native);
        goto fail;
    }
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
