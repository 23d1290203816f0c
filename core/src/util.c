/*
 * util.c - small pure helpers shared by the core.
 */
/* realpath() is an XSI function. */
#define _XOPEN_SOURCE 700
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ============================================================================================
 * Time
 * ========================================================================================== */

static int64_t (*clock_override)(void);

void util_set_clock(int64_t (*now_ms_fn)(void))
{
    clock_override = now_ms_fn;
}

int64_t util_now_ms(void)
{
    struct timespec ts;
    if (clock_override) {
        return clock_override();
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t util_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void util_sleep_ms(int64_t ms)
{
    struct timespec req;
    if (ms <= 0) {
        return;
    }
    req.tv_sec = (time_t)(ms / 1000);
    req.tv_nsec = (long)(ms % 1000) * 1000000L;
    while (nanosleep(&req, &req) != 0 && errno == EINTR) {
    }
}

/* Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's civil algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    const unsigned doe = (unsigned)(z - era * 146097);
    const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    const unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

void util_format_iso8601(int64_t ms, char *buf, size_t len)
{
    int64_t secs = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
    int64_t msec = ms - secs * 1000;
    int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
    int64_t sod = secs - days * 86400;
    int64_t y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    snprintf(buf, len, "%04lld-%02u-%02uT%02d:%02d:%02d.%03dZ", (long long)y, m, d,
             (int)(sod / 3600), (int)(sod % 3600 / 60), (int)(sod % 60), (int)msec);
}

static bool parse_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if ((*p)[i] < '0' || (*p)[i] > '9') {
            return false;
        }
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *out = v;
    return true;
}

static int days_in_month(int64_t y, int m)
{
    static const int dim[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : dim[m - 1];
}

int util_parse_iso8601(const char *s, int64_t *out_ms, bp_error *err)
{
    const char *p = s;
    int y, mo, d, hh = 0, mi = 0, ss = 0, msec = 0, off_min = 0;
    if (!s || !parse_digits(&p, 4, &y) || *p++ != '-' || !parse_digits(&p, 2, &mo) || *p++ != '-' ||
        !parse_digits(&p, 2, &d)) {
        goto bad;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo)) {
        return bp_err(err, BP_E_INVAL, "'%s' is not a valid date", s);
    }
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (!parse_digits(&p, 2, &hh) || *p++ != ':' || !parse_digits(&p, 2, &mi)) {
            goto bad;
        }
        if (*p == ':') {
            p++;
            if (!parse_digits(&p, 2, &ss)) {
                goto bad;
            }
            if (*p == '.' || *p == ',') {
                int scale = 100;
                p++;
                if (*p < '0' || *p > '9') {
                    goto bad;
                }
                while (*p >= '0' && *p <= '9') {
                    msec += (*p - '0') * scale;
                    scale /= 10;
                    p++;
                }
            }
        }
        if (hh > 23 || mi > 59 || ss > 60) {
            return bp_err(err, BP_E_INVAL, "'%s' has an out-of-range time of day", s);
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            int sign = *p == '-' ? -1 : 1, oh, om = 0;
            p++;
            if (!parse_digits(&p, 2, &oh)) {
                goto bad;
            }
            if (*p == ':') {
                p++;
            }
            if (*p && !parse_digits(&p, 2, &om)) {
                goto bad;
            }
            if (oh > 23 || om > 59) {
                goto bad;
            }
            off_min = sign * (oh * 60 + om);
        }
    }
    if (*p != '\0') {
        goto bad;
    }
    *out_ms = (days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + hh * 3600 + mi * 60 + ss -
               off_min * 60) *
                  1000 +
              msec;
    return BP_OK;
bad:
    return bp_err(err, BP_E_INVAL,
                  "'%s' is not an ISO 8601 time (expected e.g. 2026-11-22T10:15:00Z)",
                  s ? s : "(null)");
}

int util_parse_duration_ms(const char *s, int64_t *out_ms, bp_error *err)
{
    char *end = NULL;
    double v, mult = 1000.0;
    if (!s || !*s) {
        return bp_err(err, BP_E_INVAL, "empty duration");
    }
    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || !isfinite(v) || v < 0) {
        return bp_err(err, BP_E_INVAL, "'%s' is not a duration (e.g. 30, 30s, 5m, 2h, 1d)", s);
    }
    if (strcmp(end, "") == 0 || strcmp(end, "s") == 0) {
        mult = 1000.0;
    } else if (strcmp(end, "ms") == 0) {
        mult = 1.0;
    } else if (strcmp(end, "m") == 0) {
        mult = 60000.0;
    } else if (strcmp(end, "h") == 0) {
        mult = 3600000.0;
    } else if (strcmp(end, "d") == 0) {
        mult = 86400000.0;
    } else {
        return bp_err(err, BP_E_INVAL, "'%s' has an unknown unit '%s' (use ms, s, m, h or d)", s,
                      end);
    }
    if (v * mult > 9.0e15) {
        return bp_err(err, BP_E_INVAL, "duration '%s' is too large", s);
    }
    *out_ms = (int64_t)llround(v * mult);
    return BP_OK;
}

/* ============================================================================================
 * Randomness and ids
 * ========================================================================================== */

static _Thread_local uint64_t rng_state[2];
static _Thread_local bool rng_seeded;

static void rng_seed(void)
{
    if (getrandom(rng_state, sizeof rng_state, 0) != (ssize_t)sizeof rng_state) {
        rng_state[0] = (uint64_t)util_mono_ns() ^ UINT64_C(0x9e3779b97f4a7c15);
        rng_state[1] = (uint64_t)getpid() * UINT64_C(0xbf58476d1ce4e5b9) ^ (uint64_t)util_mono_ns();
    }
    if (rng_state[0] == 0 && rng_state[1] == 0) {
        rng_state[0] = 1;
    }
    rng_seeded = true;
}

/* xorshift128+: fast, good enough for jitter and id randomness (not for secrets). */
uint64_t util_rand64(void)
{
    uint64_t s1, s0;
    if (!rng_seeded) {
        rng_seed();
    }
    s1 = rng_state[0];
    s0 = rng_state[1];
    rng_state[0] = s0;
    s1 ^= s1 << 23;
    rng_state[1] = s1 ^ s0 ^ (s1 >> 17) ^ (s0 >> 26);
    return rng_state[1] + s0;
}

double util_rand01(void)
{
    return (double)(util_rand64() >> 11) * (1.0 / 9007199254740992.0);
}

void util_uuid7(char *buf)
{
    /* Monotonic within the process: when two ids share a millisecond, the 12-bit rand_a field is
     * used as a counter so ids still sort in creation order (RFC 9562 method 1). */
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static int64_t last_ms;
    static uint32_t seq;
    uint8_t b[16];
    int64_t ms = util_now_ms();
    uint64_t r = util_rand64();
    uint64_t r2 = util_rand64();

    pthread_mutex_lock(&lock);
    if (ms <= last_ms) {
        ms = last_ms;
        seq++;
        if (seq > 0xfff) {
            ms++;
            seq = (uint32_t)(r & 0x3ff);
        }
    } else {
        seq = (uint32_t)(r & 0x3ff);
    }
    last_ms = ms;
    uint32_t rand_a = seq;
    pthread_mutex_unlock(&lock);

    for (int i = 0; i < 6; i++) {
        b[i] = (uint8_t)((uint64_t)ms >> (40 - 8 * i));
    }
    b[6] = (uint8_t)(0x70 | ((rand_a >> 8) & 0x0f));
    b[7] = (uint8_t)(rand_a & 0xff);
    for (int i = 8; i < 16; i++) {
        b[i] = (uint8_t)(r2 >> (8 * (i - 8)));
    }
    b[8] = (uint8_t)(0x80 | (b[8] & 0x3f));
    snprintf(buf, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0],
             b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13],
             b[14], b[15]);
}

/* ============================================================================================
 * Strings and numbers
 * ========================================================================================== */

size_t util_strlcpy(char *dst, const char *src, size_t len)
{
    size_t n = strlen(src);
    if (len > 0) {
        size_t c = n < len - 1 ? n : len - 1;
        memcpy(dst, src, c);
        dst[c] = '\0';
    }
    return n;
}

char *util_strdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

char *util_asprintf(const char *fmt, ...)
{
    va_list ap, ap2;
    char *buf;
    int n;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        va_end(ap2);
        return NULL;
    }
    buf = malloc((size_t)n + 1);
    if (buf) {
        vsnprintf(buf, (size_t)n + 1, fmt, ap2);
    }
    va_end(ap2);
    return buf;
}

bool util_str_starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

bool util_str_ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

int util_parse_int64(const char *s, int64_t min, int64_t max, const char *what, int64_t *out,
                     bp_error *err)
{
    char *end = NULL;
    long long v;
    if (!s || !*s) {
        return bp_err(err, BP_E_INVAL, "%s: expected an integer, got an empty value", what);
    }
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno == ERANGE || *end != '\0' || end == s) {
        return bp_err(err, BP_E_INVAL, "%s: '%s' is not an integer", what, s);
    }
    if (v < min || v > max) {
        return bp_err(err, BP_E_INVAL, "%s: %lld is out of range [%lld, %lld]", what, v,
                      (long long)min, (long long)max);
    }
    *out = v;
    return BP_OK;
}

int util_parse_double(const char *s, const char *what, double *out, bp_error *err)
{
    char *end = NULL;
    double v;
    if (!s || !*s) {
        return bp_err(err, BP_E_INVAL, "%s: expected a number, got an empty value", what);
    }
    errno = 0;
    v = strtod(s, &end);
    if (errno == ERANGE || *end != '\0' || end == s || !isfinite(v)) {
        return bp_err(err, BP_E_INVAL, "%s: '%s' is not a finite number", what, s);
    }
    *out = v;
    return BP_OK;
}

/* ============================================================================================
 * Files and paths
 * ========================================================================================== */

int util_mkdir_p(const char *path, unsigned mode, bp_error *err)
{
    char buf[PATH_MAX];
    if (util_strlcpy(buf, path, sizeof buf) >= sizeof buf) {
        return bp_err(err, BP_E_INVAL, "path too long: %s", path);
    }
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char saved = *p;
            *p = '\0';
            if (mkdir(buf, (mode_t)mode) != 0 && errno != EEXIST) {
                int e = errno;
                char msg[128];
                return bp_err(err, BP_E_IO, "cannot create directory %s: %s", buf,
                              strerror_r(e, msg, sizeof msg) == 0 ? msg : "error");
            }
            *p = saved;
            if (saved == '\0') {
                break;
            }
        }
    }
    return BP_OK;
}

int util_read_file(const char *path, size_t max_bytes, char **out_buf, size_t *out_len,
                   bp_error *err)
{
    char msg[128];
    struct stat st;
    char *buf = NULL;
    size_t len = 0, cap;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    *out_buf = NULL;
    if (fd < 0) {
        int e = errno;
        return bp_err(err, e == ENOENT ? BP_E_NOTFOUND : BP_E_IO, "cannot open %s: %s", path,
                      strerror_r(e, msg, sizeof msg) == 0 ? msg : "error");
    }
    if (fstat(fd, &st) != 0 || S_ISDIR(st.st_mode)) {
        close(fd);
        return bp_err(err, BP_E_IO, "cannot read %s: not a regular file", path);
    }
    cap = st.st_size > 0 ? (size_t)st.st_size + 1 : 4096;
    if (cap > max_bytes + 1) {
        cap = max_bytes + 1;
    }
    buf = malloc(cap);
    if (!buf) {
        close(fd);
        return bp_err(err, BP_E_NOMEM, "out of memory reading %s", path);
    }
    for (;;) {
        ssize_t n;
        if (len + 1 >= cap) {
            if (cap > max_bytes) {
                free(buf);
                close(fd);
                return bp_err(err, BP_E_LIMIT, "%s is larger than %zu bytes", path, max_bytes);
            }
            size_t ncap = cap * 2 > max_bytes + 1 ? max_bytes + 1 : cap * 2;
            char *nb = realloc(buf, ncap);
            if (!nb) {
                free(buf);
                close(fd);
                return bp_err(err, BP_E_NOMEM, "out of memory reading %s", path);
            }
            buf = nb;
            cap = ncap;
        }
        n = read(fd, buf + len, cap - 1 - len);
        if (n < 0) {
            int e = errno;
            if (e == EINTR) {
                continue;
            }
            free(buf);
            close(fd);
            return bp_err(err, BP_E_IO, "cannot read %s: %s", path,
                          strerror_r(e, msg, sizeof msg) == 0 ? msg : "error");
        }
        if (n == 0) {
            break;
        }
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    *out_buf = buf;
    if (out_len) {
        *out_len = len;
    }
    return BP_OK;
}

int util_write_file_atomic(const char *path, const void *data, size_t len, bp_error *err)
{
    char tmp[PATH_MAX];
    char msg[128];
    const char *p = data;
    int fd;
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= sizeof tmp) {
        return bp_err(err, BP_E_INVAL, "path too long: %s", path);
    }
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        int e = errno;
        return bp_err(err, BP_E_IO, "cannot create %s: %s", tmp,
                      strerror_r(e, msg, sizeof msg) == 0 ? msg : "error");
    }
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            int e = errno;
            if (e == EINTR) {
                continue;
            }
            close(fd);
            unlink(tmp);
            return bp_err(err, BP_E_IO, "cannot write %s: %s", tmp,
                          strerror_r(e, msg, sizeof msg) == 0 ? msg : "error");
        }
        p += n;
        len -= (size_t)n;
    }
    if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return bp_err(err, BP_E_IO, "cannot write %s: %s", path,
                      strerror_r(e, msg, sizeof msg) == 0 ? msg : "error");
    }
    return BP_OK;
}

int util_exe_dir(char *buf, size_t len)
{
    ssize_t n = readlink("/proc/self/exe", buf, len - 1);
    char *slash;
    if (n <= 0) {
        return BP_E_IO;
    }
    buf[n] = '\0';
    slash = strrchr(buf, '/');
    if (!slash) {
        return BP_E_IO;
    }
    *slash = '\0';
    return BP_OK;
}

int64_t util_file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

bool util_path_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

char *util_realpath(const char *path)
{
    return realpath(path, NULL);
}

/* ============================================================================================
 * "Did you mean" hints
 * ========================================================================================== */

/* Levenshtein distance for "did you mean" hints; long strings are not worth a hint. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t row[65];
    if (la > 64 || lb > 64) {
        return SIZE_MAX;
    }
    for (size_t j = 0; j <= lb; j++) {
        row[j] = j;
    }
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] == b[j - 1] ? 0 : 1);
            if (up + 1 < best) {
                best = up + 1;
            }
            if (row[j - 1] + 1 < best) {
                best = row[j - 1] + 1;
            }
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

const char *util_closest(const char *word, const char *const *cands, size_t n)
{
    const char *best = NULL;
    size_t best_d = SIZE_MAX, limit = strlen(word) <= 4 ? 1 : 2;
    for (size_t i = 0; i < n; i++) {
        size_t d = edit_distance(word, cands[i]);
        if (d <= limit && d < best_d) {
            best = cands[i];
            best_d = d;
        }
    }
    return best;
}
