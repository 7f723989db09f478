/* Change events -> PostgreSQL binary COPY tuples, without Python objects.
 *
 * The C half of duality.sinks.dialects.postgres_binary (read that module first: it
 * builds the plans this code follows and says when replicate uses it). Two functions;
 * the first, for snapshot reads going straight into a table:
 *
 *     encode(records, start, schema_id, tail, key_plan, value_plan) -> (stop, data)
 *
 * takes log records (the named tuples of duality.events.model.Record) from
 * records[start] on, for as long as each one is a snapshot read of the expected shape:
 *
 *   - its schema id is schema_id and it has a key and a value;
 *   - its value is {"before":null,"after":{...}<tail>, with exactly the bytes of
 *     `tail` (the source block, op "r", ...) after the row image;
 *   - its key and its row image are JSON objects with exactly the plan's fields, in
 *     the plan's order, with no whitespace (as capture and Kafka Connect write them);
 *   - every value is one this code converts exactly (see the kinds below).
 *
 * It returns the index of the first record it did not take, and the binary COPY tuples
 * of the records it took (no file header: the caller writes it). It never raises for a
 * record it does not understand: it stops there, and the Python decoder carries on.
 *
 * A plan is a tuple of fields, each (name: bytes, kind: int, scale: int); kind SKIP
 * parses a value and leaves it out (the key columns inside the row image, which are
 * sent from the record key). The key plan's fields come first in a tuple, then the
 * value plan's, in order.
 *
 * The second, for streamed changes going through a table's stage:
 *
 *     encode_changes(records, start, stop, schema_id, key_plan, value_plan, watermark,
 *                    placeholders, carry, winners) -> (stop, carry)
 *
 * takes the records the Python decoder's fast path takes (inserts, updates, deletes and
 * snapshot reads with a source.lsn past the watermark, and the tombstone after each
 * delete), of one partition, with the same plans, and folds each into the dict winners
 * as the stage row (key, values or NULLs, position, op "u" or "d") of its key, keyed by
 * the key's bytes, where its position is newer than the one there. It stops where that
 * path would leave a record to the slow one (an unchanged-TOAST placeholder, an update
 * whose image's key is not the record key's), at any record with headers (the halves of
 * a moved row), and at a key with escapes (keys are told apart by their bytes).
 *
 * And stage_tuples(rows) joins such (position, tuple) pairs into one buffer, with the
 * end of each tuple and the oldest and newest position (duality.sinks.base.StageTuples).
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

enum {
    K_SKIP = 0,
    K_INT2 = 1,
    K_INT4 = 2,
    K_INT8 = 3,
    K_BOOL = 4,
    K_TEXT = 5,
    K_NUMERIC = 6,     /* Connect Decimal: base64 of a big-endian two's complement */
    K_TIMESTAMPTZ = 7, /* io.debezium.time.ZonedTimestamp: YYYY-MM-DDTHH:MM:SS[.f]Z */
    K_DATE = 8,        /* io.debezium.time.Date: days since 1970-01-01 */
    K_TIMESTAMP_US = 9, /* io.debezium.time.MicroTimestamp */
    K_TIMESTAMP_MS = 10, /* io.debezium.time.Timestamp */
    K_LAST = 10
};

/* Record's fields (duality.events.model.Record). */
#define R_PARTITION 1
#define R_KEY 4
#define R_VALUE 5
#define R_HEADERS 6
#define R_SCHEMA_ID 7
#define R_SIZE 8

static const char HEAD[] = "{\"before\":null,\"after\":";
#define HEAD_LEN (sizeof(HEAD) - 1)

/* Days from 1970-01-01 to 2000-01-01, PostgreSQL's epoch. */
#define PG_EPOCH_DAYS 10957
#define PG_EPOCH_US (INT64_C(946684800) * 1000000)
/* 0001-01-01 and 9999-12-31 in days since 1970 (years outside are left to Python). */
#define MIN_DAYS (-719162)
#define MAX_DAYS 2932896
#define US_PER_DAY (INT64_C(86400) * 1000000)

typedef struct {
    char *data;
    Py_ssize_t len;
    Py_ssize_t cap;
} Buffer;

static int
reserve(Buffer *b, Py_ssize_t more)
{
    if (b->len + more <= b->cap)
        return 0;
    Py_ssize_t cap = b->cap ? b->cap : 1 << 16;
    while (cap < b->len + more)
        cap *= 2;
    char *data = PyMem_Realloc(b->data, (size_t)cap);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

static void
put16(char *p, uint16_t v)
{
    p[0] = (char)(v >> 8);
    p[1] = (char)v;
}

static void
put32(char *p, uint32_t v)
{
    p[0] = (char)(v >> 24);
    p[1] = (char)(v >> 16);
    p[2] = (char)(v >> 8);
    p[3] = (char)v;
}

static void
put64(char *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

typedef struct {
    const char *name;
    Py_ssize_t name_len;
    int kind;
    int scale;
} Field;

typedef struct {
    Field *fields;
    Py_ssize_t count;
} Plan;

/* Outcome of converting one value: OK, STOP (leave the record to Python), or ERROR
 * (a Python exception is set: out of memory). */
#define OK 0
#define STOP 1
#define ERROR (-1)

/* ---------------------------------------------------------------- JSON scanning -- */

/* What a byte is to the scanning loops below, one lookup instead of four comparisons
 * (set when the module loads). */
#define C_PLAIN 1 /* a string's byte that is itself: printable ASCII, not '"' or '\\' */
#define C_DELIM 2 /* ends a number or a literal: ',', '}', ']', ':' */
#define C_QUOTE 4 /* ends a plain field name: '"', '\\' */
static unsigned char byte_class[256];

static void
init_byte_classes(void)
{
    for (int ch = 0x20; ch < 0x80; ch++)
        byte_class[ch] = C_PLAIN;
    byte_class['"'] = byte_class['\\'] = C_QUOTE;
    byte_class[','] |= C_DELIM;
    byte_class['}'] |= C_DELIM;
    byte_class[']'] |= C_DELIM;
    byte_class[':'] |= C_DELIM;
}

typedef struct {
    const unsigned char *p;
    const unsigned char *end;
} Cursor;

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 when invalid
 * (overlong forms, surrogates and code points past U+10FFFF are invalid). */
static int
utf8_length(const unsigned char *p, Py_ssize_t n)
{
    unsigned char c = p[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        return (n >= 2 && (p[1] & 0xC0) == 0x80) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (n < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80)
            return 0;
        if (c == 0xE0 && p[1] < 0xA0)
            return 0; /* overlong */
        if (c == 0xED && p[1] >= 0xA0)
            return 0; /* a surrogate */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (n < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 ||
            (p[3] & 0xC0) != 0x80)
            return 0;
        if (c == 0xF0 && p[1] < 0x90)
            return 0; /* overlong */
        if (c == 0xF4 && p[1] >= 0x90)
            return 0; /* past U+10FFFF */
        return 4;
    }
    return 0;
}

static int
hex4(const unsigned char *p, uint32_t *out)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static Py_ssize_t
put_utf8(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* The string at c->p (its opening quote), unescaped into out when out is not NULL (out
 * has room for as many bytes as the string's raw form: unescaping never grows it).
 * Sets *len to the unescaped length. STOP on anything PostgreSQL's text would not hold
 * the same (NUL) or that is not valid JSON text. */
static int
scan_string(Cursor *c, char *out, Py_ssize_t *len)
{
    const unsigned char *p = c->p, *end = c->end;
    Py_ssize_t n = 0;
    if (p >= end || *p != '"')
        return STOP;
    p++;
    while (p < end) {
        /* a run of plain ASCII (most of an event's strings), at once */
        const unsigned char *run = p;
        while (p < end && (byte_class[*p] & C_PLAIN))
            p++;
        if (p > run) {
            if (out != NULL)
                memcpy(out + n, run, (size_t)(p - run));
            n += p - run;
            if (p >= end)
                break;
        }
        unsigned char ch = *p;
        if (ch == '"') {
            c->p = p + 1;
            *len = n;
            return OK;
        }
        if (ch == '\\') {
            if (p + 1 >= end)
                return STOP;
            unsigned char e = p[1];
            char plain;
            switch (e) {
            case '"': plain = '"'; break;
            case '\\': plain = '\\'; break;
            case '/': plain = '/'; break;
            case 'b': plain = '\b'; break;
            case 'f': plain = '\f'; break;
            case 'n': plain = '\n'; break;
            case 'r': plain = '\r'; break;
            case 't': plain = '\t'; break;
            case 'u': {
                uint32_t cp, low;
                if (end - p < 6 || hex4(p + 2, &cp) < 0)
                    return STOP;
                p += 6;
                if (cp == 0)
                    return STOP; /* PostgreSQL text cannot hold NUL */
                if (cp >= 0xDC00 && cp <= 0xDFFF)
                    return STOP; /* a lone low surrogate */
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &low) < 0 ||
                        low < 0xDC00 || low > 0xDFFF)
                        return STOP;
                    p += 6;
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                }
                if (out != NULL)
                    n += put_utf8(out + n, cp);
                else
                    n += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
                continue;
            }
            default:
                return STOP;
            }
            if (out != NULL)
                out[n] = plain;
            n++;
            p += 2;
            continue;
        }
        if (ch < 0x20)
            return STOP; /* a control character must be escaped in JSON */
        int step = utf8_length(p, end - p);
        if (step == 0)
            return STOP;
        if (out != NULL)
            memcpy(out + n, p, (size_t)step);
        n += step;
        p += step;
    }
    return STOP;
}

/* A JSON integer (no fraction, no exponent) that fits in int64. */
static int
scan_int(Cursor *c, int64_t *out)
{
    const unsigned char *p = c->p, *end = c->end;
    int negative = 0;
    uint64_t v = 0;
    if (p < end && *p == '-') {
        negative = 1;
        p++;
    }
    const unsigned char *digits = p;
    while (p < end && *p >= '0' && *p <= '9') {
        if (p - digits >= 19)
            return STOP; /* more than 19 digits: past int64, left to Python */
        v = v * 10 + (uint64_t)(*p - '0');
        p++;
    }
    if (p == digits || (*digits == '0' && p - digits > 1))
        return STOP;
    if (p < end && (*p == '.' || *p == 'e' || *p == 'E'))
        return STOP;
    if (negative ? v > (uint64_t)INT64_MAX + 1 : v > (uint64_t)INT64_MAX)
        return STOP;
    *out = negative ? (int64_t)(0 - v) : (int64_t)v;
    c->p = p;
    return OK;
}

static int
literal(Cursor *c, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
        return STOP;
    c->p += n;
    return OK;
}

/* Any JSON value, skipped (nested objects and arrays by bracket depth). */
static int
skip_value(Cursor *c)
{
    Py_ssize_t len;
    int depth = 0;
    do {
        if (c->p >= c->end)
            return STOP;
        unsigned char ch = *c->p;
        if (ch == '"') {
            if (scan_string(c, NULL, &len) != OK)
                return STOP;
        }
        else if (ch == '{' || ch == '[') {
            depth++;
            c->p++;
        }
        else if (ch == '}' || ch == ']') {
            if (depth == 0)
                return STOP;
            depth--;
            c->p++;
        }
        else if (ch == ',' || ch == ':') {
            if (depth == 0)
                return STOP;
            c->p++;
        }
        else {
            /* a number or a literal: up to the next delimiter */
            const unsigned char *start = c->p;
            while (c->p < c->end && !(byte_class[*c->p] & C_DELIM))
                c->p++;
            if (c->p == start)
                return STOP;
        }
    } while (depth > 0);
    return OK;
}

/* ------------------------------------------------------------------ conversions -- */

static int
put_null(Buffer *b)
{
    if (reserve(b, 4) < 0)
        return ERROR;
    put32(b->data + b->len, 0xFFFFFFFFu);
    b->len += 4;
    return OK;
}

/* A value of `width` bytes (1, 2, 4 or 8: big-endian, two's complement) with its
 * length. */
static int
put_fixed(Buffer *b, int64_t v, int width)
{
    if (reserve(b, 4 + width) < 0)
        return ERROR;
    char *p = b->data + b->len;
    put32(p, (uint32_t)width);
    if (width == 1)
        p[4] = (char)v;
    else if (width == 2)
        put16(p + 4, (uint16_t)(int16_t)v);
    else if (width == 4)
        put32(p + 4, (uint32_t)(int32_t)v);
    else
        put64(p + 4, (uint64_t)v);
    b->len += 4 + width;
    return OK;
}

static int
put_int(Buffer *b, Cursor *c, int kind)
{
    int64_t v;
    if (scan_int(c, &v) != OK)
        return STOP;
    int width = kind == K_INT2 ? 2 : kind == K_INT4 ? 4 : 8;
    if ((width == 2 && (v < INT16_MIN || v > INT16_MAX)) ||
        (width == 4 && (v < INT32_MIN || v > INT32_MAX)))
        return STOP; /* out of the column's range: Python names the error */
    return put_fixed(b, v, width);
}

static int
put_bool(Buffer *b, Cursor *c)
{
    int v;
    if (literal(c, "true") == OK)
        v = 1;
    else if (literal(c, "false") == OK)
        v = 0;
    else
        return STOP;
    return put_fixed(b, v, 1);
}

static int
put_text(Buffer *b, Cursor *c)
{
    Cursor probe = *c;
    Py_ssize_t len;
    /* the raw form bounds the unescaped one */
    if (reserve(b, 4 + (c->end - c->p)) < 0)
        return ERROR;
    if (scan_string(&probe, b->data + b->len + 4, &len) != OK)
        return STOP;
    put32(b->data + b->len, (uint32_t)len);
    b->len += 4 + len;
    *c = probe;
    return OK;
}

static int
base64_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '+')
        return 62;
    if (ch == '/')
        return 63;
    return -1;
}

/* A Connect Decimal (base64 of the unscaled value, big-endian two's complement) with
 * `scale` fraction digits, as PostgreSQL's binary numeric: ndigits, weight, sign,
 * dscale, then base-10000 digits, the first of weight `weight`. Unscaled values of up
 * to 16 bytes (38 digits) are converted; longer ones are left to Python. */
static int
put_numeric(Buffer *b, Cursor *c, int scale)
{
    const unsigned char *p = c->p, *end = c->end;
    unsigned char bytes[18];
    int nbytes = 0, bits = 0, pad = 0;
    uint32_t acc = 0;
    if (p >= end || *p != '"')
        return STOP;
    p++;
    const unsigned char *start = p;
    while (p < end && *p != '"') {
        if (*p == '=') {
            pad++;
            p++;
            continue;
        }
        int v = base64_value(*p);
        if (v < 0 || pad)
            return STOP;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (nbytes >= 16)
                return STOP;
            bytes[nbytes++] = (unsigned char)(acc >> bits);
        }
        p++;
    }
    if (p >= end || (p - start) % 4 != 0 || pad > 2)
        return STOP;
    c->p = p + 1;

    /* the magnitude, and the sign */
    int negative = nbytes > 0 && (bytes[0] & 0x80);
    unsigned __int128 magnitude = 0;
    for (int i = 0; i < nbytes; i++)
        magnitude = (magnitude << 8) | (unsigned char)(negative ? ~bytes[i] : bytes[i]);
    if (negative)
        magnitude += 1; /* two's complement: -(~x + 1) */

    /* decimal digits, least significant first */
    unsigned char decimal[40];
    int ndecimal = 0;
    while (magnitude > 0) {
        decimal[ndecimal++] = (unsigned char)(magnitude % 10);
        magnitude /= 10;
    }

    /* decimal digit j has exponent j - scale; base-10000 group g holds exponents
     * 4g .. 4g + 3 (floor division) */
    int16_t groups[16];
    int ngroups = 0, weight = 0;
    if (ndecimal > 0) {
        int low = -scale, high = ndecimal - 1 - scale;
        int gmin = low >= 0 ? low / 4 : -((-low + 3) / 4);
        int gmax = high >= 0 ? high / 4 : -((-high + 3) / 4);
        if (gmax - gmin + 1 > 16)
            return STOP;
        static const int powers[4] = {1, 10, 100, 1000};
        int values[16] = {0};
        for (int j = 0; j < ndecimal; j++) {
            int e = j - scale;
            int g = e >= 0 ? e / 4 : -((-e + 3) / 4);
            values[gmax - g] += decimal[j] * powers[e - 4 * g];
        }
        int first = 0, last = gmax - gmin;
        while (first <= last && values[first] == 0)
            first++;
        while (last >= first && values[last] == 0)
            last--;
        weight = gmax - first;
        for (int i = first; i <= last; i++)
            groups[ngroups++] = (int16_t)values[i];
    }
    if (reserve(b, 4 + 8 + 2 * ngroups) < 0)
        return ERROR;
    char *out = b->data + b->len;
    put32(out, (uint32_t)(8 + 2 * ngroups));
    put16(out + 4, (uint16_t)ngroups);
    put16(out + 6, (uint16_t)(int16_t)(ngroups ? weight : 0));
    put16(out + 8, (uint16_t)((negative && ngroups) ? 0x4000 : 0x0000));
    put16(out + 10, (uint16_t)scale);
    for (int i = 0; i < ngroups; i++)
        put16(out + 12 + 2 * i, (uint16_t)groups[i]);
    b->len += 4 + 8 + 2 * ngroups;
    return OK;
}

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static int64_t
days_from_civil(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int
digits_at(const unsigned char *p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 0;
}

/* "YYYY-MM-DDTHH:MM:SS[.f{1,6}]Z" (years 0001-9999) as microseconds since
 * 2000-01-01 UTC; any other form (an offset, a signed year, infinity) is left to
 * Python. */
static int
put_timestamptz(Buffer *b, Cursor *c)
{
    const unsigned char *p = c->p, *end = c->end;
    int y, mo, d, h, mi, s, fraction = 0;
    static const int month_days[12] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (end - p < 22 || p[0] != '"' || p[5] != '-' || p[8] != '-' || p[11] != 'T' ||
        p[14] != ':' || p[17] != ':')
        return STOP;
    if (digits_at(p + 1, 4, &y) || digits_at(p + 6, 2, &mo) || digits_at(p + 9, 2, &d) ||
        digits_at(p + 12, 2, &h) || digits_at(p + 15, 2, &mi) || digits_at(p + 18, 2, &s))
        return STOP;
    p += 20;
    if (*p == '.') {
        int n = 0;
        p++;
        while (p < end && *p >= '0' && *p <= '9' && n < 7) {
            fraction = fraction * 10 + (*p - '0');
            n++;
            p++;
        }
        if (n == 0 || n > 6)
            return STOP;
        for (; n < 6; n++)
            fraction *= 10;
    }
    if (end - p < 2 || p[0] != 'Z' || p[1] != '"')
        return STOP;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > month_days[mo - 1] ||
        (mo == 2 && d == 29 && !leap) || h > 23 || mi > 59 || s > 59)
        return STOP;
    c->p = p + 2;
    int64_t days = days_from_civil(y, mo, d);
    int64_t us = (days * 86400 + h * 3600 + mi * 60 + s) * INT64_C(1000000) + fraction;
    return put_fixed(b, us - PG_EPOCH_US, 8);
}

static int
put_date(Buffer *b, Cursor *c)
{
    int64_t days;
    if (scan_int(c, &days) != OK || days < MIN_DAYS || days > MAX_DAYS)
        return STOP;
    return put_fixed(b, days - PG_EPOCH_DAYS, 4);
}

static int
put_timestamp(Buffer *b, Cursor *c, int64_t per_unit)
{
    int64_t units;
    if (scan_int(c, &units) != OK)
        return STOP;
    /* years 0001-9999 only (Debezium's stand-ins for infinity are far outside) */
    if (units < MIN_DAYS * US_PER_DAY / per_unit ||
        units >= (MAX_DAYS + 1) * US_PER_DAY / per_unit)
        return STOP;
    return put_fixed(b, units * per_unit - PG_EPOCH_US, 8);
}

static int
put_value(Buffer *b, Cursor *c, const Field *f, int nullable)
{
    if (c->p < c->end && *c->p == 'n') {
        if (!nullable || literal(c, "null") != OK)
            return STOP; /* a key without a value: Python skips the record */
        return put_null(b);
    }
    switch (f->kind) {
    case K_INT2:
    case K_INT4:
    case K_INT8:
        return put_int(b, c, f->kind);
    case K_BOOL:
        return put_bool(b, c);
    case K_TEXT:
        return put_text(b, c);
    case K_NUMERIC:
        return put_numeric(b, c, f->scale);
    case K_TIMESTAMPTZ:
        return put_timestamptz(b, c);
    case K_DATE:
        return put_date(b, c);
    case K_TIMESTAMP_US:
        return put_timestamp(b, c, 1);
    case K_TIMESTAMP_MS:
        return put_timestamp(b, c, 1000);
    }
    return STOP;
}

/* Where a value starts and ends in its record's bytes. */
typedef struct {
    const unsigned char *start;
    const unsigned char *end;
} Span;

/* The unchanged-TOAST placeholders of a table (as UTF-8), which no value may be. */
typedef struct {
    const char **text;
    Py_ssize_t *len;
    Py_ssize_t count;
} Placeholders;

static int
is_placeholder(const Placeholders *marks, const char *text, Py_ssize_t len)
{
    for (Py_ssize_t i = 0; i < marks->count; i++)
        if (marks->len[i] == len && memcmp(marks->text[i], text, (size_t)len) == 0)
            return 1;
    return 0;
}

/* Whether the JSON string [start, end) (its quotes included, already scanned) is one
 * of `marks`: STOP if it is, else OK (ERROR: no memory). A string without escapes is
 * its own text, compared as it is; one with escapes is unescaped into `scratch`. */
static int
placeholder_at(const unsigned char *start, const unsigned char *end,
               const Placeholders *marks, Buffer *scratch)
{
    Py_ssize_t n = end - start - 2;
    if (memchr(start + 1, '\\', (size_t)n) == NULL)
        return is_placeholder(marks, (const char *)start + 1, n) ? STOP : OK;
    Cursor probe = {start, end};
    Py_ssize_t len;
    scratch->len = 0;
    if (reserve(scratch, n) < 0)
        return ERROR;
    if (scan_string(&probe, scratch->data, &len) != OK)
        return STOP;
    return is_placeholder(marks, scratch->data, len) ? STOP : OK;
}

/* An object with exactly the plan's fields in order; each non-SKIP value appended
 * (a null only where `nullable`). With `spans`, notes where each field's value is;
 * with `marks` (and a `scratch` buffer), stops at a string value that is one of them
 * (an unchanged-TOAST placeholder: Python folds those). */
static int
put_object(Buffer *b, Cursor *c, const Plan *plan, int nullable, Span *spans,
           const Placeholders *marks, Buffer *scratch)
{
    if (c->p >= c->end || *c->p != '{')
        return STOP;
    c->p++;
    for (Py_ssize_t i = 0; i < plan->count; i++) {
        const Field *f = &plan->fields[i];
        if (i > 0) {
            if (c->p >= c->end || *c->p != ',')
                return STOP;
            c->p++;
        }
        /* "name": compared raw (a name that needs escaping never matches: Python) */
        if (c->end - c->p < f->name_len + 3 || c->p[0] != '"' ||
            memcmp(c->p + 1, f->name, (size_t)f->name_len) != 0 ||
            c->p[1 + f->name_len] != '"' || c->p[2 + f->name_len] != ':')
            return STOP;
        c->p += f->name_len + 3;
        const unsigned char *start = c->p;
        int done = f->kind == K_SKIP ? skip_value(c) : put_value(b, c, f, nullable);
        if (done != OK)
            return done;
        if (marks != NULL && marks->count > 0 && *start == '"') {
            done = placeholder_at(start, c->p, marks, scratch);
            if (done != OK)
                return done;
        }
        if (spans != NULL) {
            spans[i].start = start;
            spans[i].end = c->p;
        }
    }
    if (c->p >= c->end || *c->p != '}')
        return STOP;
    c->p++;
    return OK;
}

/* ------------------------------------------------------------------- the module -- */

static int
read_plan(PyObject *tuple, Plan *plan, Py_ssize_t *columns)
{
    if (!PyTuple_Check(tuple)) {
        PyErr_SetString(PyExc_TypeError, "a plan is a tuple of (name, kind, scale)");
        return -1;
    }
    plan->count = PyTuple_GET_SIZE(tuple);
    plan->fields = PyMem_Calloc((size_t)(plan->count ? plan->count : 1), sizeof(Field));
    if (plan->fields == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < plan->count; i++) {
        PyObject *item = PyTuple_GET_ITEM(tuple, i);
        Field *f = &plan->fields[i];
        char *name;
        if (!PyTuple_Check(item) ||
            !PyArg_ParseTuple(item, "y#ii", &name, &f->name_len, &f->kind, &f->scale))
            goto bad;
        f->name = name;
        if (f->kind < K_SKIP || f->kind > K_LAST || f->scale < 0 || f->scale > 1000)
            goto bad;
        if (f->kind != K_SKIP)
            (*columns)++;
    }
    return 0;
bad:
    if (!PyErr_Occurred())
        PyErr_SetString(PyExc_ValueError, "a plan field is (name: bytes, kind, scale)");
    return -1;
}

/* Whether a record has a value (bytes) of schema id schema_id: 1, 0 (also where it has
 * no schema id), or -1 with an exception set. */
static int
of_schema(PyObject *record, PyObject *schema_id)
{
    PyObject *sid = PyTuple_GET_ITEM(record, R_SCHEMA_ID);
    if (!PyBytes_Check(PyTuple_GET_ITEM(record, R_VALUE)) || sid == Py_None)
        return 0;
    return PyObject_RichCompareBool(sid, schema_id, Py_EQ);
}

static PyObject *
encode(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *records, *schema_id, *key_tuple, *value_tuple;
    Py_ssize_t start;
    const char *tail;
    Py_ssize_t tail_len;
    Plan key_plan = {NULL, 0}, value_plan = {NULL, 0};
    Buffer b = {NULL, 0, 0};
    Py_ssize_t columns = 0, index;
    PyObject *result = NULL;

    if (!PyArg_ParseTuple(args, "O!nOy#O!O!", &PyList_Type, &records, &start, &schema_id,
                          &tail, &tail_len, &PyTuple_Type, &key_tuple, &PyTuple_Type,
                          &value_tuple))
        return NULL;
    if (read_plan(key_tuple, &key_plan, &columns) < 0 ||
        read_plan(value_tuple, &value_plan, &columns) < 0)
        goto done;
    if (columns > 0x7FFF) {
        PyErr_SetString(PyExc_ValueError, "more columns than a COPY tuple holds");
        goto done;
    }
    Py_ssize_t count = PyList_GET_SIZE(records);
    for (index = start < 0 ? 0 : start; index < count; index++) {
        PyObject *record = PyList_GET_ITEM(records, index);
        if (!PyTuple_Check(record) || PyTuple_GET_SIZE(record) != R_SIZE)
            break;
        PyObject *key = PyTuple_GET_ITEM(record, R_KEY);
        PyObject *value = PyTuple_GET_ITEM(record, R_VALUE);
        if (!PyBytes_Check(key))
            break;
        int same = of_schema(record, schema_id);
        if (same < 0)
            goto done;
        if (!same)
            break;
        const unsigned char *v = (const unsigned char *)PyBytes_AS_STRING(value);
        Py_ssize_t vlen = PyBytes_GET_SIZE(value);
        if (vlen < (Py_ssize_t)HEAD_LEN + tail_len || memcmp(v, HEAD, HEAD_LEN) != 0 ||
            memcmp(v + vlen - tail_len, tail, (size_t)tail_len) != 0)
            break;
        Py_ssize_t mark = b.len;
        if (reserve(&b, 2) < 0)
            goto done;
        put16(b.data + b.len, (uint16_t)columns);
        b.len += 2;
        Cursor kc = {(const unsigned char *)PyBytes_AS_STRING(key),
                     (const unsigned char *)PyBytes_AS_STRING(key) + PyBytes_GET_SIZE(key)};
        int done = put_object(&b, &kc, &key_plan, 0, NULL, NULL, NULL);
        if (done == OK && kc.p != kc.end)
            done = STOP;
        if (done == OK) {
            Cursor vc = {v + HEAD_LEN, v + vlen - tail_len};
            done = put_object(&b, &vc, &value_plan, 1, NULL, NULL, NULL);
            if (done == OK && vc.p != vc.end)
                done = STOP; /* the image does not end where the tail starts */
        }
        if (done == ERROR)
            goto done;
        if (done == STOP) {
            b.len = mark;
            break;
        }
    }
    PyObject *data = PyBytes_FromStringAndSize(b.data ? b.data : "", b.len);
    if (data != NULL) {
        result = Py_BuildValue("(nN)", index, data);
    }
done:
    PyMem_Free(key_plan.fields);
    PyMem_Free(value_plan.fields);
    PyMem_Free(b.data);
    return result;
}

/* ------------------------------------------------------------ streamed changes -- */

/* The parts of a change event's value that make a stage row: the op, whether it has
 * a before or after field at all, whether its after image (an object) was appended to
 * the row, and source.lsn. */
typedef struct {
    char op;
    int has_image;
    int has_after;
    int64_t lsn;
    int has_lsn;
} Change;

/* Where read_change appends an after image: the row, the value plan and the spans of
 * its fields, the placeholders and their scratch buffer. */
typedef struct {
    Buffer *row;
    const Plan *plan;
    Span *spans;
    const Placeholders *marks;
    Buffer *scratch;
} Image;

static int
field_name(Cursor *c, const char **name, Py_ssize_t *len)
{
    /* a plain name (no escapes), then the colon */
    const unsigned char *p = c->p;
    if (p >= c->end || *p != '"')
        return STOP;
    const unsigned char *q = p + 1;
    while (q < c->end && !(byte_class[*q] & C_QUOTE))
        q++;
    if (q + 1 >= c->end || *q != '"' || q[1] != ':')
        return STOP;
    *name = (const char *)(p + 1);
    *len = q - (p + 1);
    c->p = q + 2;
    return OK;
}

static int
name_is(const char *name, Py_ssize_t len, const char *word)
{
    return (size_t)len == strlen(word) && memcmp(name, word, (size_t)len) == 0;
}

static int
read_source(Cursor *c, Change *change)
{
    if (c->p >= c->end || *c->p != '{')
        return STOP;
    c->p++;
    if (c->p < c->end && *c->p == '}') {
        c->p++;
        return OK;
    }
    for (;;) {
        const char *name;
        Py_ssize_t len;
        if (field_name(c, &name, &len) != OK)
            return STOP;
        if (name_is(name, len, "lsn")) {
            if (scan_int(c, &change->lsn) != OK)
                return STOP; /* null or not an integer: Python */
            change->has_lsn = 1;
        }
        else if (skip_value(c) != OK)
            return STOP;
        if (c->p < c->end && *c->p == ',') {
            c->p++;
            continue;
        }
        if (c->p < c->end && *c->p == '}') {
            c->p++;
            return OK;
        }
        return STOP;
    }
}

/* The value `v` of a change event, read once: an after image that is an object is
 * appended to `image`'s row as it comes (the op only comes after it). OK, STOP (Python
 * takes the record) or ERROR. */
static int
read_change(const unsigned char *v, Py_ssize_t len, Change *change, const Image *image)
{
    Cursor c = {v, v + len};
    memset(change, 0, sizeof(*change));
    if (c.p >= c.end || *c.p != '{')
        return STOP;
    c.p++;
    for (;;) {
        const char *name;
        Py_ssize_t nlen;
        if (field_name(&c, &name, &nlen) != OK)
            return STOP;
        if (name_is(name, nlen, "op")) {
            if (c.end - c.p < 3 || c.p[0] != '"' || c.p[2] != '"')
                return STOP;
            change->op = (char)c.p[1];
            c.p += 3;
        }
        else if (name_is(name, nlen, "after")) {
            if (change->has_after)
                return STOP; /* a second after field: Python reads it as JSON does */
            change->has_image = 1;
            if (c.p < c.end && *c.p == '{') {
                int done = put_object(image->row, &c, image->plan, 1, image->spans,
                                      image->marks, image->scratch);
                if (done != OK)
                    return done;
                change->has_after = 1;
            }
            else if (skip_value(&c) != OK)
                return STOP;
        }
        else if (name_is(name, nlen, "source")) {
            if (read_source(&c, change) != OK)
                return STOP;
        }
        else {
            if (name_is(name, nlen, "before"))
                change->has_image = 1;
            if (skip_value(&c) != OK)
                return STOP;
        }
        if (c.p < c.end && *c.p == ',') {
            c.p++;
            continue;
        }
        if (c.p < c.end && *c.p == '}' && c.p + 1 == c.end)
            return change->has_lsn ? OK : STOP;
        return STOP;
    }
}

static int
read_marks(PyObject *tuple, Placeholders *marks)
{
    marks->count = PyTuple_GET_SIZE(tuple);
    marks->text = PyMem_Calloc((size_t)(marks->count ? marks->count : 1), sizeof(char *));
    marks->len = PyMem_Calloc((size_t)(marks->count ? marks->count : 1), sizeof(Py_ssize_t));
    if (marks->text == NULL || marks->len == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (Py_ssize_t i = 0; i < marks->count; i++) {
        PyObject *item = PyTuple_GET_ITEM(tuple, i);
        if (!PyBytes_Check(item)) {
            PyErr_SetString(PyExc_TypeError, "placeholders are bytes");
            return -1;
        }
        marks->text[i] = PyBytes_AS_STRING(item);
        marks->len[i] = PyBytes_GET_SIZE(item);
    }
    return 0;
}

/* Whether the row image's key columns (SKIP fields) hold what the key holds, byte for
 * byte (else the update may move its row: Python decides). */
static int
same_key(const Plan *key_plan, const Span *key_spans, const Plan *value_plan,
         const Span *image_spans)
{
    for (Py_ssize_t i = 0; i < value_plan->count; i++) {
        const Field *f = &value_plan->fields[i];
        if (f->kind != K_SKIP)
            continue;
        for (Py_ssize_t k = 0; k < key_plan->count; k++) {
            const Field *g = &key_plan->fields[k];
            if (g->name_len != f->name_len || memcmp(g->name, f->name, (size_t)f->name_len))
                continue;
            Py_ssize_t a = image_spans[i].end - image_spans[i].start;
            Py_ssize_t b = key_spans[k].end - key_spans[k].start;
            if (a != b || memcmp(image_spans[i].start, key_spans[k].start, (size_t)a) != 0)
                return 0;
        }
    }
    return 1;
}

static PyObject *
encode_changes(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *records, *schema_id, *key_tuple, *value_tuple, *marks_tuple, *winners;
    PyObject *carry, *watermark_obj;
    Py_ssize_t start, stop;
    Plan key_plan = {NULL, 0}, value_plan = {NULL, 0};
    Placeholders marks = {NULL, NULL, 0};
    Buffer row = {NULL, 0, 0}, scratch = {NULL, 0, 0};
    Span *key_spans = NULL, *image_spans = NULL;
    Py_ssize_t columns = 0, index = 0, key_columns = 0, value_columns;
    PyObject *result = NULL, *partition = NULL;
    int64_t watermark = 0;

    if (!PyArg_ParseTuple(args, "O!nnOO!O!OO!OO!", &PyList_Type, &records, &start, &stop,
                          &schema_id, &PyTuple_Type, &key_tuple, &PyTuple_Type,
                          &value_tuple, &watermark_obj, &PyTuple_Type, &marks_tuple, &carry,
                          &PyDict_Type, &winners))
        return NULL;
    if (watermark_obj != Py_None) {
        watermark = PyLong_AsLongLong(watermark_obj);
        if (watermark == -1 && PyErr_Occurred())
            return NULL;
    }
    Py_INCREF(carry);
    if (read_plan(key_tuple, &key_plan, &key_columns) < 0 ||
        read_plan(value_tuple, &value_plan, &columns) < 0 || read_marks(marks_tuple, &marks) < 0)
        goto done;
    value_columns = columns;
    columns += key_columns + 2; /* and the position and the op */
    if (columns > 0x7FFF) {
        PyErr_SetString(PyExc_ValueError, "more columns than a COPY tuple holds");
        goto done;
    }
    key_spans = PyMem_Calloc((size_t)(key_plan.count + 1), sizeof(Span));
    image_spans = PyMem_Calloc((size_t)(value_plan.count + 1), sizeof(Span));
    if (key_spans == NULL || image_spans == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t count = PyList_GET_SIZE(records);
    if (stop < 0 || stop > count)
        stop = count;
    for (index = start < 0 ? 0 : start; index < stop; index++) {
        PyObject *record = PyList_GET_ITEM(records, index);
        if (!PyTuple_Check(record) || PyTuple_GET_SIZE(record) != R_SIZE)
            break;
        PyObject *part = PyTuple_GET_ITEM(record, R_PARTITION);
        if (partition == NULL)
            partition = part;
        else {
            int same = PyObject_RichCompareBool(part, partition, Py_EQ);
            if (same < 0)
                goto done;
            if (!same)
                break; /* one partition per call: the carry is the partition's */
        }
        PyObject *key = PyTuple_GET_ITEM(record, R_KEY);
        PyObject *value = PyTuple_GET_ITEM(record, R_VALUE);
        PyObject *headers = PyTuple_GET_ITEM(record, R_HEADERS);
        if (!PyBytes_Check(key) || !PyTuple_Check(headers) || PyTuple_GET_SIZE(headers) > 0)
            break; /* headers: perhaps half of a moved row (__debezium.newkey/oldkey),
                    * whose create takes values from the deleted row: Python folds
                    * both halves in one batch step */
        if (value == Py_None) { /* the tombstone after a delete repeats it */
            if (carry == Py_None || PyBytes_GET_SIZE(carry) != PyBytes_GET_SIZE(key) ||
                memcmp(PyBytes_AS_STRING(carry), PyBytes_AS_STRING(key),
                       (size_t)PyBytes_GET_SIZE(key)) != 0)
                break;
            Py_SETREF(carry, Py_NewRef(Py_None));
            continue;
        }
        int same = of_schema(record, schema_id);
        if (same < 0)
            goto done;
        if (!same)
            break;
        row.len = 0;
        if (reserve(&row, 2) < 0)
            goto done;
        put16(row.data, (uint16_t)columns);
        row.len = 2;
        Cursor kc = {(const unsigned char *)PyBytes_AS_STRING(key),
                     (const unsigned char *)PyBytes_AS_STRING(key) + PyBytes_GET_SIZE(key)};
        int done = put_object(&row, &kc, &key_plan, 0, key_spans, &marks, &scratch);
        if (done == OK && kc.p != kc.end)
            done = STOP;
        if (done == OK && memchr(PyBytes_AS_STRING(key), '\\', (size_t)PyBytes_GET_SIZE(key)))
            done = STOP; /* keys are told apart by their bytes: only unescaped ones */
        Py_ssize_t keyed = row.len;
        Change change;
        const Image image = {&row, &value_plan, image_spans, &marks, &scratch};
        if (done == OK)
            done = read_change((const unsigned char *)PyBytes_AS_STRING(value),
                               PyBytes_GET_SIZE(value), &change, &image);
        if (done == ERROR)
            goto done;
        if (done == STOP)
            break;
        char op = change.op;
        if (op != 'c' && op != 'u' && op != 'r' && op != 'd')
            break;
        if (change.lsn > (INT64_MAX - 1) / 2 || change.lsn < INT64_MIN / 2)
            break;
        int64_t position = change.lsn * 2 + (op != 'r');
        if (watermark_obj != Py_None && position <= watermark)
            break;
        if (op == 'd') {
            if (!change.has_image)
                break;
            row.len = keyed; /* the values of a deleted row: nulls */
            for (Py_ssize_t i = 0; done == OK && i < value_columns; i++)
                done = put_null(&row);
        }
        else if (!change.has_after)
            break;
        else if (op == 'u' && !same_key(&key_plan, key_spans, &value_plan, image_spans))
            break;
        if (done == OK) {
            done = put_fixed(&row, position, 8);
            if (done == OK && reserve(&row, 5) == 0) {
                put32(row.data + row.len, 1);
                row.data[row.len + 4] = op == 'd' ? 'd' : 'u';
                row.len += 5;
            }
            else if (done == OK)
                done = ERROR;
        }
        if (done == ERROR)
            goto done;
        if (done == STOP)
            break;
        PyObject *current = PyDict_GetItemWithError(winners, key);
        if (current == NULL && PyErr_Occurred())
            goto done;
        int newer = 1;
        if (current != NULL) {
            long long was = PyLong_AsLongLong(PyTuple_GET_ITEM(current, 0));
            if (was == -1 && PyErr_Occurred())
                goto done;
            newer = position > was;
        }
        if (newer) {
            PyObject *entry = Py_BuildValue("(Ly#)", (long long)position, row.data, row.len);
            if (entry == NULL)
                goto done;
            PyObject_GC_UnTrack(entry); /* an int and bytes: in no cycle, never scanned */
            int failed = PyDict_SetItem(winners, key, entry);
            Py_DECREF(entry);
            if (failed < 0)
                goto done;
        }
        Py_SETREF(carry, Py_NewRef(op == 'd' ? key : Py_None));
    }
    result = Py_BuildValue("(nO)", index, carry);
done:
    Py_DECREF(carry);
    PyMem_Free(key_plan.fields);
    PyMem_Free(value_plan.fields);
    PyMem_Free(marks.text);
    PyMem_Free(marks.len);
    PyMem_Free(key_spans);
    PyMem_Free(image_spans);
    PyMem_Free(row.data);
    PyMem_Free(scratch.data);
    return result;
}

/* The (position, tuple) pairs of `rows` (a sized iterable: winners' values) one after
 * another: (data, ends, low, high) as duality.sinks.base.StageTuples holds them, or None
 * where there are none. Two passes over the pairs, one copy of each tuple. */
static PyObject *
stage_tuples(PyObject *self, PyObject *rows)
{
    (void)self;
    PyObject *pairs = PySequence_Fast(rows, "rows: (position, tuple) pairs");
    if (pairs == NULL)
        return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(pairs);
    PyObject **items = PySequence_Fast_ITEMS(pairs);
    PyObject *data = NULL, *ends = NULL, *result = NULL;
    long long low = 0, high = 0;
    Py_ssize_t total = 0;
    if (count == 0) {
        Py_DECREF(pairs);
        Py_RETURN_NONE;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *pair = items[i];
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 ||
            !PyBytes_Check(PyTuple_GET_ITEM(pair, 1))) {
            PyErr_SetString(PyExc_TypeError, "rows: (position, tuple) pairs");
            goto done;
        }
        long long position = PyLong_AsLongLong(PyTuple_GET_ITEM(pair, 0));
        if (position == -1 && PyErr_Occurred())
            goto done;
        if (i == 0 || position < low)
            low = position;
        if (i == 0 || position > high)
            high = position;
        total += PyBytes_GET_SIZE(PyTuple_GET_ITEM(pair, 1));
    }
    data = PyBytes_FromStringAndSize(NULL, total);
    ends = PyList_New(count);
    if (data == NULL || ends == NULL)
        goto done;
    char *out = PyBytes_AS_STRING(data);
    Py_ssize_t at = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *tuple = PyTuple_GET_ITEM(items[i], 1);
        Py_ssize_t n = PyBytes_GET_SIZE(tuple);
        memcpy(out + at, PyBytes_AS_STRING(tuple), (size_t)n);
        at += n;
        PyObject *end = PyLong_FromSsize_t(at);
        if (end == NULL)
            goto done;
        PyList_SET_ITEM(ends, i, end);
    }
    result = Py_BuildValue("(OOLL)", data, ends, low, high);
done:
    Py_XDECREF(data);
    Py_XDECREF(ends);
    Py_DECREF(pairs);
    return result;
}

static PyMethodDef methods[] = {
    {"encode", encode, METH_VARARGS,
     "encode(records, start, schema_id, tail, key_plan, value_plan) -> (stop, data)\n\n"
     "Binary COPY tuples of the snapshot reads records[start:stop] (see the module)."},
    {"encode_changes", encode_changes, METH_VARARGS,
     "encode_changes(records, start, stop, schema_id, key_plan, value_plan, watermark,\n"
     "               placeholders, carry, winners) -> (stop, carry)\n\n"
     "Stage rows of the changes records[start:stop] collapsed into winners (see the "
     "module)."},
    {"stage_tuples", stage_tuples, METH_O,
     "stage_tuples(rows) -> (data, ends, low, high) | None\n\n"
     "The (position, tuple) pairs of rows joined (duality.sinks.base.StageTuples)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_binarycopy",
    "Snapshot change events -> PostgreSQL binary COPY tuples (see postgres_binary).", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__binarycopy(void)
{
    init_byte_classes();
    return PyModule_Create(&module);
}
