/* charset.c - converting typed text to UTF-8. */
#include "charset.h"

#include <errno.h>
#include <iconv.h>
#include <langinfo.h>
#include <locale.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "sanitize.h"

static iconv_t from_locale = (iconv_t)-1;
static char codeset[64];
static char *scratch;
static bool told;

void charset_init(void)
{
	const char *cs;

	setlocale(LC_CTYPE, "");
	cs = nl_langinfo(CODESET);
	snprintf(codeset, sizeof codeset, "%s", cs && *cs ? cs : "UTF-8");
	if (strcasecmp(codeset, "UTF-8") != 0 && strcasecmp(codeset, "utf8") != 0)
		from_locale = iconv_open("UTF-8", codeset);
}

void charset_free(void)
{
	if (from_locale != (iconv_t)-1)
		iconv_close(from_locale);
	from_locale = (iconv_t)-1;
	free(scratch);
	scratch = NULL;
}

/* Converts with iconv into scratch; false when the line is not valid in
 * the locale's character set either. */
static bool convert(const char *line, size_t len, size_t *outlen)
{
	size_t cap = len * 4 + 4, in_left = len, out_left;
	char *in = (char *)line, *out;

	free(scratch);
	scratch = malloc(cap);
	if (!scratch)
		return false;
	out = scratch;
	out_left = cap;
	iconv(from_locale, NULL, NULL, NULL, NULL);
	if (iconv(from_locale, &in, &in_left, &out, &out_left) == (size_t)-1 ||
	    iconv(from_locale, NULL, NULL, &out, &out_left) == (size_t)-1)
		return false;
	*outlen = cap - out_left;
	return utf8_valid(scratch, *outlen);
}

/* Copies the line with U+FFFD for each byte that is not UTF-8. */
static const char *replace_invalid(const char *line, size_t len, size_t *outlen)
{
	size_t i = 0, o = 0, n;
	uint32_t cp;

	free(scratch);
	scratch = malloc(len * 3 + 1);
	if (!scratch) {
		*outlen = 0;
		return "";
	}
	while (i < len) {
		n = utf8_decode(line + i, len - i, &cp);
		if (n == 0) {
			memcpy(scratch + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		} else {
			memcpy(scratch + o, line + i, n);
			o += n;
			i += n;
		}
	}
	*outlen = o;
	return scratch;
}

const char *charset_to_utf8(const char *line, size_t len, size_t *outlen)
{
	*outlen = len;
	if (utf8_valid(line, len))
		return line;
	if (from_locale != (iconv_t)-1 && convert(line, len, outlen))
		return scratch;
	if (!told && from_locale != (iconv_t)-1)
		log_warn("a line is neither UTF-8 nor %s (the locale's character set): "
			 "its invalid bytes are sent as U+FFFD (said once)", codeset);
	else if (!told)
		log_warn("a line is not valid UTF-8: its invalid bytes are sent as U+FFFD "
			 "(said once)");
	told = true;
	return replace_invalid(line, len, outlen);
}
