/*
 * kb_subject.c - subject keys: normalise an identifier, then HMAC it under
 * the chain key (see kb_subject.h for the rules, docs/SUBJECT_KEYS.md for
 * examples).
 *
 * Two agencies only find each other when they produce the same bytes for
 * the same person, so normalisation is strict and locale-free: every rule
 * here is written out (no <ctype.h>, no towlower, no setlocale), works on
 * bytes and code points of strictly decoded UTF-8, and refuses what it
 * cannot normalise rather than guessing. A value that is refused is a
 * value the agency can correct; a value normalised wrongly is a match that
 * silently never happens.
 *
 * Identifiers are personal data: they never appear in an error detail, and
 * the normalised copy is wiped once hashed. OpenSSL's HMAC keeps its copy
 * of the chain key in secure memory and clears it when the context is freed.
 *
 * Used by the SDK (adapters/sdk/subject.c), the CLI and the tests.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "kb_codec.h"
#include "kb_error.h"
#include "kb_keys.h"
#include "kb_subject.h"
#include "kb_util.h"

#define S_BSN_DIGITS 9u       /* a BSN has exactly nine digits */
#define S_VNUMMER_DIGITS 10u  /* a V-nummer has exactly ten digits */
#define S_DOC_MIN 5u          /* shortest document number accepted */
#define S_DOC_MAX 32u         /* longest document number accepted */
#define S_PHONE_MIN_DIGITS 8u /* fewest digits after '+' */
#define S_PHONE_MAX_DIGITS 15u /* most digits after '+' (E.164) */
#define S_YEAR_MIN 1900       /* earliest birth year accepted */
#define S_YEAR_MAX 2099       /* latest birth year accepted */
#define S_HMAC_LEN 32u        /* SHA-256 output */
#define S_UTF8_MAX 4u         /* bytes of the longest UTF-8 sequence */

/* Bytes written so far into a caller's buffer; always NUL-terminated. */
typedef struct {
    char *buf;  /* destination */
    size_t cap; /* its size, including the NUL */
    size_t len; /* bytes written, without the NUL */
} s_out_t;

static int s_put(s_out_t *o, const char *text, size_t text_len)
{
    if (text_len >= o->cap - o->len)
        return kb_error_set(KB_ETOOBIG, "subject: normalised value does not fit in %zu bytes", o->cap);
    memcpy(o->buf + o->len, text, text_len);
    o->len += text_len;
    o->buf[o->len] = '\0';
    return KB_OK;
}

static int s_put_char(s_out_t *o, char ch)
{
    return s_put(o, &ch, 1);
}

static int s_is_digit(int ch)
{
    return ch >= '0' && ch <= '9';
}

static int s_is_upper(int ch)
{
    return ch >= 'A' && ch <= 'Z';
}

static int s_is_lower(int ch)
{
    return ch >= 'a' && ch <= 'z';
}

/* ------------------------------------------------------------ bsn, vnummer */

/* Digits of value into o, dropping spaces, '.' and '-'; exactly n of them. */
static int s_digits(const char *type, const char *value, size_t n, s_out_t *o)
{
    for (const char *p = value; *p; p++) {
        if (*p == ' ' || *p == '.' || *p == '-')
            continue;
        if (!s_is_digit((unsigned char)*p))
            return kb_error_set(KB_EPROTO, "%s: only digits, spaces, '.' and '-' are allowed", type);
        if (o->len == n)
            return kb_error_set(KB_EPROTO, "%s: more than %zu digits", type, n);
        int rc = s_put_char(o, *p);
        if (rc != KB_OK)
            return rc;
    }
    if (o->len != n)
        return kb_error_set(KB_EPROTO, "%s: %zu digits, expected %zu", type, o->len, n);
    return KB_OK;
}

static int s_norm_bsn(const char *value, s_out_t *o)
{
    int rc = s_digits("bsn", value, S_BSN_DIGITS, o);
    if (rc != KB_OK)
        return rc;
    /* The elfproef: weights 9..2 for d1..d8 and -1 for d9. */
    int sum = 0, any = 0;
    for (size_t i = 0; i < S_BSN_DIGITS; i++) {
        int d = o->buf[i] - '0';
        int weight = i + 1 < S_BSN_DIGITS ? (int)(S_BSN_DIGITS - i) : -1;
        sum += weight * d;
        any |= d;
    }
    if (!any)
        return kb_error_set(KB_EPROTO, "bsn: all digits are zero");
    if (sum % 11 != 0)
        return kb_error_set(KB_EPROTO, "bsn: fails the elfproef (eleven test); a digit is wrong or swapped");
    return KB_OK;
}

static int s_norm_vnummer(const char *value, s_out_t *o)
{
    return s_digits("vnummer", value, S_VNUMMER_DIGITS, o);
}

/* ------------------------------------------------------------ document */

static int s_norm_document(const char *value, s_out_t *o)
{
    for (const char *p = value; *p; p++) {
        int ch = (unsigned char)*p;
        if (ch == ' ' || ch == '.' || ch == '-')
            continue;
        if (s_is_lower(ch))
            ch = ch - 'a' + 'A';
        if (!s_is_upper(ch) && !s_is_digit(ch))
            return kb_error_set(KB_EPROTO, "document: only letters A-Z, digits, spaces, '.' and '-' are allowed");
        if (o->len == S_DOC_MAX)
            return kb_error_set(KB_EPROTO, "document: more than %u letters and digits", S_DOC_MAX);
        int rc = s_put_char(o, (char)ch);
        if (rc != KB_OK)
            return rc;
    }
    if (o->len < S_DOC_MIN)
        return kb_error_set(KB_EPROTO, "document: %zu letters and digits, at least %u", o->len, S_DOC_MIN);
    return KB_OK;
}

/* ------------------------------------------------------------ phone */

/* Working copies of a phone number, wiped after use. */
typedef struct {
    char c1[KB_SUBJECT_VALUE_MAX + 1];     /* without spaces, '.' and '-' */
    char c2[KB_SUBJECT_VALUE_MAX + 1];     /* also without parentheses */
    char digits[KB_SUBJECT_VALUE_MAX + 8]; /* the digits after '+' */
} s_phone_t;

static int s_phone(const char *value, s_out_t *o, s_phone_t *w)
{
    /* Pass 1: drop spaces, '.' and '-'; refuse anything but digits, '+', '(' and ')'. */
    char *c1 = w->c1, *c2 = w->c2, *digits = w->digits;
    size_t n1 = 0;
    for (const char *p = value; *p; p++) {
        if (*p == ' ' || *p == '.' || *p == '-')
            continue;
        if (!s_is_digit((unsigned char)*p) && !strchr("+()", *p))
            return kb_error_set(KB_EPROTO, "phone: only digits, '+', spaces, '-', '.', '(' and ')' are allowed");
        c1[n1++] = *p; /* n1 <= strlen(value) <= KB_SUBJECT_VALUE_MAX */
    }
    c1[n1] = '\0';

    /* Pass 2: "+44 (0)20 ..." writes the trunk prefix that is not dialled
     * after a country code; drop "(0)" there, then the other parentheses. */
    int international = c1[0] == '+' || (c1[0] == '0' && c1[1] == '0');
    size_t n2 = 0;
    for (size_t i = 0; i < n1; i++) {
        if (international && strncmp(c1 + i, "(0)", 3) == 0) {
            i += 2;
            continue;
        }
        if (c1[i] == '(' || c1[i] == ')')
            continue;
        if (c1[i] == '+' && n2 > 0)
            return kb_error_set(KB_EPROTO, "phone: '+' is only allowed at the start");
        c2[n2++] = c1[i];
    }
    c2[n2] = '\0';

    /* The digits after '+': country code first. */
    size_t cap = sizeof w->digits;
    int rc;
    if (c2[0] == '+')
        rc = kb_fmt(digits, cap, "%s", c2 + 1);
    else if (c2[0] == '0' && c2[1] == '0')
        rc = kb_fmt(digits, cap, "%s", c2 + 2);
    else if (c2[0] == '0')
        rc = kb_fmt(digits, cap, "31%s", c2 + 1);
    else
        return kb_error_set(KB_EPROTO, "phone: must start with '+', '00' or a Dutch '0'");
    if (rc != KB_OK)
        return kb_error_set(KB_ETOOBIG, "phone: too long");
    /* Dutch numbers never start with 0 after +31: "+31 06..." is a slip. */
    if (strncmp(digits, "310", 3) == 0)
        memmove(digits + 2, digits + 3, strlen(digits + 3) + 1);
    size_t n = strlen(digits);
    if (n == 0 || digits[0] == '0')
        return kb_error_set(KB_EPROTO, "phone: no country code after the international prefix");
    if (n < S_PHONE_MIN_DIGITS || n > S_PHONE_MAX_DIGITS)
        return kb_error_set(KB_EPROTO, "phone: %zu digits after '+', expected %u to %u", n, S_PHONE_MIN_DIGITS,
                            S_PHONE_MAX_DIGITS);
    rc = s_put_char(o, '+');
    return rc == KB_OK ? s_put(o, digits, n) : rc;
}

static int s_norm_phone(const char *value, s_out_t *o)
{
    s_phone_t w;
    int rc = s_phone(value, o, &w);
    OPENSSL_cleanse(&w, sizeof w);
    return rc;
}

/* ------------------------------------------------------------ name_birth */

static size_t s_utf8_put(uint32_t cp, char out[S_UTF8_MAX])
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

/* Letters of Latin-1 Supplement and Latin Extended-A without their accents,
 * lower case; plus the Romanian comma-below letters of Latin Extended-B,
 * which systems mix with the cedilla ones (ş, ţ) of Extended-A. A code point
 * of those blocks that is in no range here (×, ÷) is refused. */
static const struct {
    uint32_t first; /* first code point of the range */
    uint32_t last;  /* last code point, inclusive */
    const char *to; /* ASCII replacement */
} s_latin[] = {
    {0x00C0, 0x00C5, "a"},  {0x00C6, 0x00C6, "ae"}, {0x00C7, 0x00C7, "c"},  {0x00C8, 0x00CB, "e"},
    {0x00CC, 0x00CF, "i"},  {0x00D0, 0x00D0, "d"},  {0x00D1, 0x00D1, "n"},  {0x00D2, 0x00D6, "o"},
    {0x00D8, 0x00D8, "o"},  {0x00D9, 0x00DC, "u"},  {0x00DD, 0x00DD, "y"},  {0x00DE, 0x00DE, "th"},
    {0x00DF, 0x00DF, "ss"}, {0x00E0, 0x00E5, "a"},  {0x00E6, 0x00E6, "ae"}, {0x00E7, 0x00E7, "c"},
    {0x00E8, 0x00EB, "e"},  {0x00EC, 0x00EF, "i"},  {0x00F0, 0x00F0, "d"},  {0x00F1, 0x00F1, "n"},
    {0x00F2, 0x00F6, "o"},  {0x00F8, 0x00F8, "o"},  {0x00F9, 0x00FC, "u"},  {0x00FD, 0x00FD, "y"},
    {0x00FE, 0x00FE, "th"}, {0x00FF, 0x00FF, "y"},  {0x0100, 0x0105, "a"},  {0x0106, 0x010D, "c"},
    {0x010E, 0x0111, "d"},  {0x0112, 0x011B, "e"},  {0x011C, 0x0123, "g"},  {0x0124, 0x0127, "h"},
    {0x0128, 0x0131, "i"},  {0x0132, 0x0133, "ij"}, {0x0134, 0x0135, "j"},  {0x0136, 0x0138, "k"},
    {0x0139, 0x0142, "l"},  {0x0143, 0x014B, "n"},  {0x014C, 0x0151, "o"},  {0x0152, 0x0153, "oe"},
    {0x0154, 0x0159, "r"},  {0x015A, 0x0161, "s"},  {0x0162, 0x0167, "t"},  {0x0168, 0x0173, "u"},
    {0x0174, 0x0175, "w"},  {0x0176, 0x0178, "y"},  {0x0179, 0x017E, "z"},  {0x017F, 0x017F, "s"},
    {0x0218, 0x0219, "s"},  {0x021A, 0x021B, "t"},
};

/* Simple lower case of Greek (U+0370-U+03FF) and Cyrillic (U+0400-U+052F),
 * as Unicode's case mapping has it; final sigma folds to sigma so that a
 * name written in capitals matches one written in lower case. */
static uint32_t s_lower_greek_cyrillic(uint32_t cp)
{
    if (cp == 0x0370 || cp == 0x0372 || cp == 0x0376 || (cp >= 0x03D8 && cp <= 0x03EE && cp % 2 == 0) ||
        cp == 0x03F7 || cp == 0x03FA || (cp >= 0x0460 && cp <= 0x0480 && cp % 2 == 0) ||
        (cp >= 0x048A && cp <= 0x04BE && cp % 2 == 0) || (cp >= 0x04C1 && cp <= 0x04CD && cp % 2 == 1) ||
        (cp >= 0x04D0 && cp <= 0x052E && cp % 2 == 0))
        return cp + 1;
    if ((cp >= 0x0391 && cp <= 0x03AB && cp != 0x03A2) || (cp >= 0x0410 && cp <= 0x042F))
        return cp + 0x20;
    if (cp >= 0x0400 && cp <= 0x040F)
        return cp + 0x50;
    if (cp >= 0x0388 && cp <= 0x038A)
        return cp + 0x25;
    if (cp == 0x038E || cp == 0x038F)
        return cp + 0x3F;
    if (cp >= 0x03FD && cp <= 0x03FF)
        return cp - 0x82;
    switch (cp) {
    case 0x037F: return 0x03F3;
    case 0x0386: return 0x03AC;
    case 0x038C: return 0x03CC;
    case 0x03C2: return 0x03C3; /* final sigma */
    case 0x03CF: return 0x03D7;
    case 0x03F4: return 0x03B8;
    case 0x03F9: return 0x03F2;
    case 0x04C0: return 0x04CF;
    default: return cp;
    }
}

/* Code points beyond Latin-1 and General Punctuation that are no letter of
 * any name: digits of other scripts, punctuation and symbols, private use.
 * A name holding one is refused rather than keyed with it. No range may
 * catch a letter of a script names are written in: the letters of CJK
 * Symbols and Punctuation (々 U+3005 of 佐々木, 〆, 〱-〵, 〻, 〼) are left
 * out, and U+3000 and U+2212 are separators, decided before this table. */
static const struct {
    uint32_t first; /* first code point of the range */
    uint32_t last;  /* last code point, inclusive */
} s_no_letters[] = {
    /* decimal digits: Arabic-Indic, Extended Arabic-Indic, NKo, Devanagari,
     * Bengali, Gurmukhi, Gujarati, Oriya, Tamil, Telugu, Kannada,
     * Malayalam, Sinhala, Thai, Lao, Tibetan, Myanmar (two), Khmer,
     * Mongolian, fullwidth */
    {0x0660, 0x0669}, {0x06F0, 0x06F9}, {0x07C0, 0x07C9}, {0x0966, 0x096F}, {0x09E6, 0x09EF},
    {0x0A66, 0x0A6F}, {0x0AE6, 0x0AEF}, {0x0B66, 0x0B6F}, {0x0BE6, 0x0BEF}, {0x0C66, 0x0C6F},
    {0x0CE6, 0x0CEF}, {0x0D66, 0x0D6F}, {0x0DE6, 0x0DEF}, {0x0E50, 0x0E59}, {0x0ED0, 0x0ED9},
    {0x0F20, 0x0F29}, {0x1040, 0x1049}, {0x1090, 0x1099}, {0x17E0, 0x17E9}, {0x1810, 0x1819},
    {0xFF10, 0xFF19},
    /* Arabic comma, semicolon, question mark, percent sign, decimal and
     * thousands separators, five pointed star, full stop */
    {0x060C, 0x060C}, {0x061B, 0x061B}, {0x061F, 0x061F}, {0x066A, 0x066D}, {0x06D4, 0x06D4},
    /* superscripts and subscripts up to Miscellaneous Symbols and Arrows:
     * currency, letterlike symbols, number forms, arrows, mathematics,
     * technical, enclosed alphanumerics, box drawing, shapes, dingbats,
     * Braille (U+2C00 on, Glagolitic and Latin Extended-C, are letters) */
    {0x2070, 0x2BFF},
    /* CJK Symbols and Punctuation but its letters */
    {0x3001, 0x3004}, {0x3007, 0x3030}, {0x3036, 0x303A}, {0x303D, 0x303F},
    /* private use */
    {0xE000, 0xF8FF},
    /* noncharacters */
    {0xFDD0, 0xFDEF},
    /* vertical forms, combining half marks, CJK compatibility forms, small
     * form variants */
    {0xFE10, 0xFE6F},
    /* fullwidth ASCII punctuation and symbols, halfwidth CJK punctuation */
    {0xFF01, 0xFF0F}, {0xFF1A, 0xFF20}, {0xFF3B, 0xFF40}, {0xFF5B, 0xFF65},
    /* specials, U+FFFD included */
    {0xFFF0, 0xFFFF},
    /* Mahjong tiles up to Symbols for Legacy Computing: emoji and other
     * symbols */
    {0x1F000, 0x1FBFF},
    /* private use planes 15 and 16 */
    {0xF0000, 0x10FFFF},
};

static int s_no_letter(uint32_t cp)
{
    if ((cp & 0xFFFEu) == 0xFFFEu) /* the two noncharacters at the end of every plane */
        return 1;
    for (size_t i = 0; i < sizeof s_no_letters / sizeof s_no_letters[0]; i++)
        if (cp >= s_no_letters[i].first && cp <= s_no_letters[i].last)
            return 1;
    return 0;
}

/* What one code point of a name becomes. */
typedef enum {
    S_CH_TEXT, /* the text in out */
    S_CH_SEP,  /* a word separator: space, dash or dot */
    S_CH_DROP, /* nothing: apostrophes, combining accents, invisible marks */
    S_CH_BAD   /* refused: digits, punctuation, control and symbol characters */
} s_ch_t;

static s_ch_t s_name_char(uint32_t cp, char out[S_UTF8_MAX], size_t *out_len)
{
    if (cp < 0x80) {
        if (s_is_upper((int)cp))
            cp += 'a' - 'A';
        if (s_is_lower((int)cp)) {
            out[0] = (char)cp;
            *out_len = 1;
            return S_CH_TEXT;
        }
        if (cp == ' ' || cp == '\t' || cp == '-' || cp == '.')
            return S_CH_SEP;
        if (cp == '\'' || cp == '`')
            return S_CH_DROP;
        return S_CH_BAD;
    }
    /* Spaces, dashes and the minus sign of other encodings. */
    if (cp == 0x00A0 || (cp >= 0x2000 && cp <= 0x200A) || (cp >= 0x2010 && cp <= 0x2015) || cp == 0x202F ||
        cp == 0x205F || cp == 0x2212 || cp == 0x3000)
        return S_CH_SEP;
    /* Soft hyphen, acute accent, apostrophes and quotes used as apostrophes,
     * combining accents (text in NFD form), zero-width characters and BOM. */
    if (cp == 0x00AD || cp == 0x00B4 || cp == 0x02BC || cp == 0x2018 || cp == 0x2019 ||
        (cp >= 0x0300 && cp <= 0x036F) || (cp >= 0x200B && cp <= 0x200D) || cp == 0x2060 || cp == 0xFEFF)
        return S_CH_DROP;
    /* C1 controls, Latin-1 symbols and the rest of General Punctuation. */
    if (cp < 0x00C0 || (cp >= 0x2000 && cp <= 0x206F))
        return S_CH_BAD;
    if (cp <= 0x017F || (cp >= 0x0218 && cp <= 0x021B)) {
        for (size_t i = 0; i < sizeof s_latin / sizeof s_latin[0]; i++)
            if (cp >= s_latin[i].first && cp <= s_latin[i].last) {
                *out_len = strlen(s_latin[i].to);
                memcpy(out, s_latin[i].to, *out_len);
                return S_CH_TEXT;
            }
        return S_CH_BAD; /* × and ÷ */
    }
    if (s_no_letter(cp))
        return S_CH_BAD;
    if (cp >= 0x0370 && cp <= 0x052F)
        cp = s_lower_greek_cyrillic(cp);
    *out_len = s_utf8_put(cp, out);
    return S_CH_TEXT;
}

/* One name part (text[0..len)) into o: lower case, no accents, words
 * separated by one space, no leading or trailing space. */
static int s_name_part(const char *what, const char *text, size_t len, s_out_t *o)
{
    size_t pos = 0, start = o->len;
    int pending_space = 0;
    while (pos < len) {
        uint32_t cp;
        if (kb_utf8_next(text, len, &pos, &cp) != KB_OK)
            return kb_error_set(KB_EPROTO, "name_birth: %s is not valid UTF-8", what);
        char ch[S_UTF8_MAX];
        size_t ch_len = 0;
        switch (s_name_char(cp, ch, &ch_len)) {
        case S_CH_SEP:
            pending_space = o->len > start;
            break;
        case S_CH_DROP:
            break;
        case S_CH_BAD:
            if (cp < 0x80 && s_is_digit((int)cp))
                return kb_error_set(KB_EPROTO, "name_birth: %s contains a digit", what);
            if (cp >= 0x20 && cp < 0x7F)
                return kb_error_set(KB_EPROTO, "name_birth: %s contains '%c'; only letters, spaces, '-', '.' "
                                               "and apostrophes are allowed", what, (int)cp);
            return kb_error_set(KB_EPROTO, "name_birth: %s contains U+%04X, which is not a letter", what,
                                (unsigned)cp);
        case S_CH_TEXT: {
            int rc = KB_OK;
            if (pending_space)
                rc = s_put_char(o, ' ');
            pending_space = 0;
            if (rc == KB_OK)
                rc = s_put(o, ch, ch_len);
            if (rc != KB_OK)
                return rc;
            break;
        }
        }
    }
    return KB_OK;
}

static int s_is_leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* "YYYY-MM-DD" (surrounding spaces allowed), a real date in the year range. */
static int s_date(const char *text, size_t len, s_out_t *o)
{
    while (len > 0 && text[0] == ' ')
        text++, len--;
    while (len > 0 && text[len - 1] == ' ')
        len--;
    static const char pattern[] = "dddd-dd-dd";
    if (len != sizeof pattern - 1)
        return kb_error_set(KB_EPROTO, "name_birth: birth date must be written YYYY-MM-DD");
    for (size_t i = 0; i < len; i++)
        if (pattern[i] == 'd' ? !s_is_digit((unsigned char)text[i]) : text[i] != '-')
            return kb_error_set(KB_EPROTO, "name_birth: birth date must be written YYYY-MM-DD");
    int y = (text[0] - '0') * 1000 + (text[1] - '0') * 100 + (text[2] - '0') * 10 + (text[3] - '0');
    int m = (text[5] - '0') * 10 + (text[6] - '0');
    int d = (text[8] - '0') * 10 + (text[9] - '0');
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < S_YEAR_MIN || y > S_YEAR_MAX)
        return kb_error_set(KB_EPROTO, "name_birth: birth year outside %d-%d", S_YEAR_MIN, S_YEAR_MAX);
    if (m < 1 || m > 12 || d < 1 || d > days[m - 1] + (m == 2 && s_is_leap(y)))
        return kb_error_set(KB_EPROTO, "name_birth: birth date does not exist");
    return s_put(o, text, len);
}

static int s_norm_name_birth(const char *value, s_out_t *o)
{
    const char *bar1 = strchr(value, '|');
    const char *bar2 = bar1 ? strchr(bar1 + 1, '|') : NULL;
    if (!bar2 || strchr(bar2 + 1, '|'))
        return kb_error_set(KB_EPROTO, "name_birth: expected \"family name|given names|YYYY-MM-DD\" "
                                       "with exactly two '|'");
    int rc = s_name_part("family name", value, (size_t)(bar1 - value), o);
    if (rc == KB_OK && o->len == 0)
        rc = kb_error_set(KB_EPROTO, "name_birth: family name is empty");
    if (rc == KB_OK)
        rc = s_put_char(o, '|');
    if (rc == KB_OK)
        rc = s_name_part("given names", bar1 + 1, (size_t)(bar2 - bar1 - 1), o);
    if (rc == KB_OK)
        rc = s_put_char(o, '|');
    if (rc == KB_OK)
        rc = s_date(bar2 + 1, strlen(bar2 + 1), o);
    return rc;
}

/* ------------------------------------------------------------ types */

static const struct {
    const char *name;                       /* type as written in the key */
    int (*normalise)(const char *, s_out_t *); /* its rules */
} s_types[] = {
    {"bsn", s_norm_bsn},
    {"vnummer", s_norm_vnummer},
    {"document", s_norm_document},
    {"name_birth", s_norm_name_birth},
    {"phone", s_norm_phone},
};

int kb_subject_normalise(const char *type, const char *value, char *out, size_t out_len)
{
    if (!out || out_len == 0)
        return kb_error_set(KB_EINVAL, "subject: no output buffer");
    out[0] = '\0';
    if (!type || !value)
        return kb_error_set(KB_EINVAL, "subject: type and value are required");
    size_t i = 0, n_types = sizeof s_types / sizeof s_types[0];
    while (i < n_types && strcmp(type, s_types[i].name) != 0)
        i++;
    if (i == n_types)
        return kb_error_set(KB_EINVAL, "subject: unknown type '%.32s' (bsn, vnummer, document, name_birth, phone)",
                            type);
    if (strnlen(value, KB_SUBJECT_VALUE_MAX + 1) > KB_SUBJECT_VALUE_MAX)
        return kb_error_set(KB_ETOOBIG, "%s: value longer than %u bytes", type, KB_SUBJECT_VALUE_MAX);
    s_out_t o = {out, out_len, 0};
    int rc = s_types[i].normalise(value, &o);
    if (rc != KB_OK) {
        /* A refused value may be half copied; it is still an identifier. */
        OPENSSL_cleanse(out, out_len);
        out[0] = '\0';
    }
    return rc;
}

int kb_subject_key(const uint8_t chain_key[KB_CHAIN_KEY_LEN], const char *type, const char *value, uint8_t out[32])
{
    if (!chain_key || !out)
        return kb_error_set(KB_EINVAL, "subject: chain key and output are required");
    char norm[KB_SUBJECT_NORMALISED_MAX];
    int rc = kb_subject_normalise(type, value, norm, sizeof norm);
    if (rc != KB_OK)
        return rc;

    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
                           OSSL_PARAM_construct_end()};
    size_t mac_len = 0;
    if (!ctx || EVP_MAC_init(ctx, chain_key, KB_CHAIN_KEY_LEN, params) != 1 ||
        EVP_MAC_update(ctx, (const unsigned char *)type, strlen(type)) != 1 ||
        EVP_MAC_update(ctx, (const unsigned char *)":", 1) != 1 ||
        EVP_MAC_update(ctx, (const unsigned char *)norm, strlen(norm)) != 1 ||
        EVP_MAC_final(ctx, out, &mac_len, S_HMAC_LEN) != 1 || mac_len != S_HMAC_LEN)
        rc = kb_error_ssl(KB_ECRYPTO, "subject: HMAC-SHA256");
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(mac);
    OPENSSL_cleanse(norm, sizeof norm);
    if (rc != KB_OK)
        OPENSSL_cleanse(out, S_HMAC_LEN);
    return rc;
}

int kb_subject_load_chain_key(const char *path, uint8_t out[KB_CHAIN_KEY_LEN])
{
    if (!path || !*path || !out)
        return kb_error_set(KB_EINVAL, "chain key: file path is required");
    return kb_keys_load_raw_secret(path, out, KB_CHAIN_KEY_LEN, "a chain key (ketenbus keygen --chain-key)");
}
