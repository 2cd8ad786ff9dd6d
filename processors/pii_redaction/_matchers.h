/*
 * Exact matchers for the commonest built-in detectors, run by scan_text() on the regions
 * around their windows instead of handing the regions back for RE2.
 *
 * Why by hand: on the benchmark workload (10% PII) a flagged string holds ~3 regions, and
 * each cost ~5 us on the event loop's thread through Python: a pybind11 call into RE2
 * (~1.4 us for a 22-byte region), a BLAKE2 digest for the validation cache, the validator
 * and the glue around them. The first five detectors here are three quarters of the
 * regions; here a region costs well under a microsecond. Secret assignments (14 us per
 * region through RE2 and Python) were added next. No library matches these shapes from C
 * without linking RE2's C++ (the google-re2 wheel links it statically into its module).
 *
 * Contract: for a region [start, end) of the text b[0, n), with `last` the end of its last
 * window, append_region() (_prefilter.c) reports what Redactor._spans_in reports for that
 * detector and that region: RE2's leftmost-first matches of the detector's pattern
 * (detectors.py), searched from `start`, then from each match's end, while the search is
 * before `end` and `last`; each kept when the Python validator keeps it, as its `value`
 * group where it has one. Like RE2 given the whole text as context, a \b at a match's edge
 * reads the byte beyond it even when that byte is outside the region.
 * tests/test_pii_prefilter.py compares both paths on generated input; a change to one of
 * these patterns or validators in detectors.py must be made here too (NATIVE_VALIDATORS
 * there names what the matchers stand in for).
 */
/* Included by _prefilter.c after its byte classes (is_digit, is_alpha, is_upper,
 * is_alnum, is_word), which the matchers share. */
#ifndef PII_MATCHERS_H
#define PII_MATCHERS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The validators' tables, given by the caller from detectors.py (native_checks()). */
#define MAX_CARD_PREFIXES 64
#define MAX_REJECTED_TLDS 32
#define MAX_PLACEHOLDERS 16
typedef struct {
    char text[16]; /* lowercase */
    uint8_t len;
} NativeWord;
typedef struct {
    struct {
        char digits[8];
        uint8_t len, lo, hi;
    } card[MAX_CARD_PREFIXES];
    unsigned n_card;
    NativeWord tld[MAX_REJECTED_TLDS];
    unsigned n_tld;
    NativeWord placeholder[MAX_PLACEHOLDERS]; /* ASCII */
    unsigned n_placeholder;
    int set;
} NativeChecks;

/* \b before b[s]: b[s] is a word byte here, so the byte before must not be one. */
static inline int m_boundary_before(const uint8_t *b, size_t s) { return s == 0 || !is_word(b[s - 1]); }
/* \b after b[e - 1], a word byte here: the byte at e, if the text has one, must not be. */
static inline int m_boundary_after(const uint8_t *b, size_t n, size_t e) { return e >= n || !is_word(b[e]); }

/* ---------------------------------------------------------------- email */

/* [A-Za-z0-9._%+\-] */
static inline int m_email_local(uint8_t c) {
    return is_alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}
static inline int m_label(uint8_t c) { return is_alnum(c) || c == '-'; }

/* [A-Za-z]{2,24}\b at t: the end of the top-level domain, or 0. */
static size_t m_tld_end(const uint8_t *b, size_t n, size_t t, size_t end) {
    size_t x = t;
    while (x < end && x - t <= 24 && is_alpha(b[x])) x++;
    size_t len = x - t;
    if (len < 2 || len > 24 || !m_boundary_after(b, n, x)) return 0;
    return x;
}

/* (?:[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,24}\b at d: the end of the
 * domain, or 0. A label cannot hold '.', so each is the whole run before its dot; the
 * greedy + prefers the most labels after which the top-level domain still matches. */
static size_t m_domain_end(const uint8_t *b, size_t n, size_t d, size_t end) {
    size_t p = d, best = 0;
    for (;;) {
        size_t q = p;
        while (q < end && m_label(b[q])) q++;
        if (q == p || q >= end || b[q] != '.' || !is_alnum(b[p]) || !is_alnum(b[q - 1])) break;
        p = q + 1;
        size_t t = m_tld_end(b, n, p, end);
        if (t) best = t;
    }
    return best;
}

/* [A-Za-z0-9._%+\-]+@<domain>: '@' is not a local byte, so a match starts where the run of
 * local bytes before its '@' starts (or at pos), and a run whose '@' is followed by no
 * domain holds no match at all. */
static int m_email(const uint8_t *b, size_t n, size_t pos, size_t end, size_t *ms, size_t *me) {
    size_t i = pos;
    while (i < end) {
        while (i < end && !m_email_local(b[i])) i++;
        size_t run = i;
        while (i < end && m_email_local(b[i])) i++;
        if (i >= end) return 0;
        if (b[i] != '@') continue;
        size_t e = m_domain_end(b, n, i + 1, end);
        if (e) {
            *ms = run;
            *me = e;
            return 1;
        }
        i++;
    }
    return 0;
}

/* detectors.make_email_validator(include_documentation=True). */
static int m_email_ok(const NativeChecks *c, const uint8_t *b, size_t s, size_t e) {
    if (e - s > 254) return 0;
    size_t at = s;
    while (b[at] != '@') at++;
    if (b[s] == '.' || b[at - 1] == '.') return 0;
    for (size_t k = s + 1; k < at; k++)
        if (b[k] == '.' && b[k - 1] == '.') return 0;
    size_t t = e;
    while (b[t - 1] != '.') t--;
    size_t len = e - t;
    for (unsigned k = 0; k < c->n_tld; k++) {
        if (c->tld[k].len != len) continue;
        size_t j = 0;
        while (j < len && (uint8_t)(b[t + j] | 0x20) == (uint8_t)c->tld[k].text[j]) j++;
        if (j == len) return 0;
    }
    return 1;
}

/* ---------------------------------------------------------------- credit_card */

/* \b\d(?:[ \-]?\d){11,18}\b: from each digit with a boundary before it, the greedy groups,
 * then the most of them (at least 11) that end on a boundary. */
static int m_card(const uint8_t *b, size_t n, size_t pos, size_t end, size_t *ms, size_t *me) {
    for (size_t s = pos; s < end; s++) {
        if (!is_digit(b[s]) || !m_boundary_before(b, s)) continue;
        size_t ends[19];
        unsigned groups = 0;
        size_t p = s + 1;
        while (groups < 18) {
            if (p + 1 < end && (b[p] == ' ' || b[p] == '-') && is_digit(b[p + 1]))
                p += 2;
            else if (p < end && is_digit(b[p]))
                p += 1;
            else
                break;
            ends[++groups] = p;
        }
        for (unsigned g = groups; g >= 11 && g > 0; g--) {
            if (m_boundary_after(b, n, ends[g])) {
                *ms = s;
                *me = ends[g];
                return 1;
            }
        }
    }
    return 0;
}

/* detectors._validate_card: one kind of separator, not one digit repeated, an issuer
 * prefix that allows the length, and the Luhn check. */
static int m_card_ok(const NativeChecks *c, const uint8_t *b, size_t s, size_t e) {
    char digits[20];
    size_t len = 0;
    uint8_t separator = 0;
    for (size_t k = s; k < e; k++) {
        if (is_digit(b[k])) {
            if (len == sizeof digits) return 0;
            digits[len++] = (char)b[k];
        } else if (separator && separator != b[k]) {
            return 0;
        } else {
            separator = b[k];
        }
    }
    if (len < 12 || len > 19) return 0;
    size_t same = 1;
    while (same < len && digits[same] == digits[0]) same++;
    if (same == len) return 0;
    int issuer = 0;
    for (unsigned k = 0; k < c->n_card && !issuer; k++)
        issuer = len >= c->card[k].lo && len <= c->card[k].hi && memcmp(digits, c->card[k].digits, c->card[k].len) == 0;
    if (!issuer) return 0;
    unsigned sum = 0;
    for (size_t k = 0; k < len; k++) {
        unsigned d = (unsigned)(digits[len - 1 - k] - '0');
        if (k & 1) d = d * 2 > 9 ? d * 2 - 9 : d * 2;
        sum += d;
    }
    return sum % 10 == 0;
}

/* ---------------------------------------------------------------- secrets */

/* [A-Za-z0-9_\-] */
static inline int m_token(uint8_t c) { return is_word(c) || c == '-'; }

static size_t m_token_run(const uint8_t *b, size_t p, size_t end) {
    while (p < end && m_token(b[p])) p++;
    return p;
}

/* \bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}: the prefix's optional word is made of
 * token bytes, so with or without it the match is "sk-" and the whole run after it. */
static int m_openai(const uint8_t *b, size_t n, size_t pos, size_t end, size_t *ms, size_t *me) {
    for (size_t s = pos; s + 23 <= end; s++) {
        if (b[s] != 's' || b[s + 1] != 'k' || b[s + 2] != '-' || !m_boundary_before(b, s)) continue;
        size_t r = m_token_run(b, s + 3, end);
        if (r - (s + 3) >= 20) {
            *ms = s;
            *me = r;
            return 1;
        }
    }
    return 0;
}

/* detectors._validate_random_token: the part after the first '_' (when one is among the
 * first 12 bytes) or the first '-' mixes digits and both cases, over 16 bytes or more. */
static int m_random_token_ok(const NativeChecks *c, const uint8_t *b, size_t s, size_t e) {
    size_t cut = s, from;
    while (cut < s + 12 && cut < e && b[cut] != '_') cut++;
    if (cut < s + 12 && cut < e) {
        from = cut + 1;
    } else {
        cut = s;
        while (cut < e && b[cut] != '-') cut++;
        from = cut < e ? cut + 1 : s; /* no separator: the whole token */
    }
    int digit = 0, upper = 0, lower = 0;
    for (size_t k = from; k < e; k++) {
        digit |= is_digit(b[k]);
        upper |= is_upper(b[k]);
        lower |= (unsigned)(b[k] - 'a') < 26;
    }
    return e - from >= 16 && digit && upper && lower;
}

/* \bsk-ant-(?:api|admin)\d\d-[A-Za-z0-9_\-]{20,} */
static int m_anthropic(const uint8_t *b, size_t n, size_t pos, size_t end, size_t *ms, size_t *me) {
    for (size_t s = pos; s + 7 <= end; s++) {
        if (b[s] != 's' || memcmp(b + s, "sk-ant-", 7) != 0 || !m_boundary_before(b, s)) continue;
        size_t p = s + 7;
        if (p + 3 <= end && memcmp(b + p, "api", 3) == 0)
            p += 3;
        else if (p + 5 <= end && memcmp(b + p, "admin", 5) == 0)
            p += 5;
        else
            continue;
        if (p + 3 > end || !is_digit(b[p]) || !is_digit(b[p + 1]) || b[p + 2] != '-') continue;
        size_t r = m_token_run(b, p + 3, end);
        if (r - (p + 3) >= 20) {
            *ms = s;
            *me = r;
            return 1;
        }
    }
    return 0;
}

/* \b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[A-Z0-9]{16}\b */
static int m_aws_id(const uint8_t *b, size_t n, size_t pos, size_t end, size_t *ms, size_t *me) {
    static const char prefixes[][4] = {"KIA", "SIA", "BIA", "CCA", "GPA", "IDA", "ROA", "IPA", "NPA", "NVA", "PKA"};
    for (size_t s = pos; s + 20 <= end; s++) {
        if (b[s] != 'A' || !m_boundary_before(b, s)) continue;
        int known = 0;
        for (size_t k = 0; k < sizeof prefixes / sizeof prefixes[0] && !known; k++)
            known = memcmp(b + s + 1, prefixes[k], 3) == 0;
        if (!known) continue;
        size_t k = s + 4;
        while (k < s + 20 && (is_digit(b[k]) || is_upper(b[k]))) k++;
        if (k == s + 20 && m_boundary_after(b, n, k)) {
            *ms = s;
            *me = k;
            return 1;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- secret_assignment */

/* (?i) letter `lower` (a-z) at b[p]: either ASCII case, and for 's' and 'k' the characters
 * RE2's case folding adds (U+017F LONG S, U+212A KELVIN SIGN). The bytes it takes, or 0. */
static size_t m_folded(const uint8_t *b, size_t p, size_t end, char lower) {
    if (p >= end) return 0;
    if ((b[p] | 0x20) == (uint8_t)lower) return 1;
    if (lower == 's' && p + 2 <= end && b[p] == 0xC5 && b[p + 1] == 0xBF) return 2;
    if (lower == 'k' && p + 3 <= end && b[p] == 0xE2 && b[p + 1] == 0x84 && b[p + 2] == 0xAA) return 3;
    return 0;
}

/* `name` at p ('?': an optional [_\-], tried taken first as RE2 does) followed by \b: the
 * name's end, or 0. Names end with a word byte, so the \b asks for none after it. */
static size_t m_name_at(const uint8_t *b, size_t n, size_t p, size_t end, const char *name) {
    if (*name == 0) return m_boundary_after(b, n, p) ? p : 0;
    if (*name == '?') {
        if (p < end && (b[p] == '_' || b[p] == '-')) {
            size_t q = m_name_at(b, n, p + 1, end, name + 1);
            if (q) return q;
        }
        return m_name_at(b, n, p, end, name + 1);
    }
    if (*name == '_') return p < end && b[p] == '_' ? m_name_at(b, n, p + 1, end, name + 1) : 0;
    size_t k = m_folded(b, p, end, *name);
    return k ? m_name_at(b, n, p + k, end, name + 1) : 0;
}

/* One character of [^\s\"'`,;&<>] at b[t] as RE2 reads UTF-8 text (an ASCII byte, or a
 * lead byte C2-F4 with its continuation bytes: RE2 takes E0 80 80 or ED A0 80 too, not C0
 * 80 nor F5): the bytes it takes, or 0. */
static size_t m_value_char(const uint8_t *b, size_t t, size_t end) {
    uint8_t c = b[t];
    if (c < 0x80)
        return !(is_space(c) || c == '"' || c == '\'' || c == '`' || c == ',' || c == ';' || c == '&' || c == '<' ||
                 c == '>');
    size_t len = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (len == 0 || t + len > end) return 0;
    for (size_t k = 1; k < len; k++)
        if ((b[t + k] & 0xC0) != 0x80) return 0;
    return len;
}

/* (?i)(?:\b|_)(?:password|passwd|pwd|secret|client_secret|api[_\-]?key|access[_\-]?key|
 * auth[_\-]?token|access[_\-]?token|private[_\-]?key)\b[\"']?\s*[:=]\s*[\"']?
 * (?P<value>[^\s\"'`,;&<>]{6,}): reports the value group, which ends the match. At one
 * start at most one name fits, and each optional part has one way to lead to a match
 * (a quote or a space cannot start the value), so no other parse needs trying. */
static int m_assignment(const uint8_t *b, size_t n, size_t pos, size_t end, size_t *ms, size_t *me) {
    static const char *const names[] = {"password", "passwd",      "pwd",        "secret",     "client_secret",
                                        "api?key",  "access?key",  "auth?token", "access?token", "private?key"};
    for (size_t p = pos; p < end; p++) {
        uint8_t c = b[p] | 0x20;
        if (c != 'p' && c != 's' && c != 'c' && c != 'a' && b[p] != '_' && b[p] != 0xC5) continue;
        /* (?:\b|_): a boundary at p and the name there, else an underscore at p and the
         * name after it. */
        size_t q = 0;
        if ((p > 0 && is_word(b[p - 1])) != is_word(b[p]))
            for (size_t k = 0; k < sizeof names / sizeof names[0] && !q; k++) q = m_name_at(b, n, p, end, names[k]);
        if (!q && b[p] == '_')
            for (size_t k = 0; k < sizeof names / sizeof names[0] && !q; k++) q = m_name_at(b, n, p + 1, end, names[k]);
        if (!q) continue;
        if (q < end && (b[q] == '"' || b[q] == '\'')) q++;
        while (q < end && is_space(b[q])) q++;
        if (q >= end || (b[q] != ':' && b[q] != '=')) continue;
        q++;
        while (q < end && is_space(b[q])) q++;
        if (q < end && (b[q] == '"' || b[q] == '\'')) q++;
        size_t v = q, chars = 0, k;
        while (q < end && (k = m_value_char(b, q, end)) != 0) {
            q += k;
            chars++;
        }
        if (chars >= 6) {
            *ms = v;
            *me = q;
            return 1;
        }
    }
    return 0;
}

/* detectors._validate_assignment: not a placeholder (compared as Python's lower() does:
 * of the non-ASCII characters only U+212A becomes ASCII, 'k'), not made of * x X . only,
 * and not a template or an earlier mask. The value holds no quote to strip. */
static int m_assignment_ok(const NativeChecks *c, const uint8_t *b, size_t s, size_t e) {
    for (unsigned k = 0; k < c->n_placeholder; k++) {
        const char *word = c->placeholder[k].text;
        size_t i = 0, p = s;
        while (i < c->placeholder[k].len && p < e) {
            if (b[p] < 0x80 && lower(b[p]) == (uint8_t)word[i]) {
                p++;
            } else if (word[i] == 'k' && p + 3 <= e && b[p] == 0xE2 && b[p + 1] == 0x84 && b[p + 2] == 0xAA) {
                p += 3;
            } else {
                break;
            }
            i++;
        }
        if (i == c->placeholder[k].len && p == e) return 0;
    }
    int masked = 1;
    for (size_t p = s; p < e && masked; p++) masked = b[p] == '*' || b[p] == 'x' || b[p] == 'X' || b[p] == '.';
    if (masked) return 0;
    static const char *const templates[] = {"${", "{{", "<", "[REDACTED"};
    for (size_t k = 0; k < sizeof templates / sizeof templates[0]; k++) {
        size_t len = strlen(templates[k]);
        if (e - s >= len && memcmp(b + s, templates[k], len) == 0) return 0;
    }
    return 1;
}

typedef int (*NativeMatch)(const uint8_t *b, size_t n, size_t pos, size_t end, size_t *ms, size_t *me);
typedef int (*NativeValid)(const NativeChecks *c, const uint8_t *b, size_t s, size_t e);

typedef struct {
    NativeMatch match;
    NativeValid valid; /* NULL: every match is a hit */
} Native;

#endif
