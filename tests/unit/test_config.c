/* test_config.c - the configuration file: every key at and just outside its
 * bounds, wrong types, unknown names, broken JSON, duplicates, the
 * all-or-nothing rule, the render/parse round trip, and loading a file. */
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "config.h"
#include "unit.h"

static char msg[8192];

static int parse(const char *text, struct t4dx_config *c)
{
	msg[0] = '\0';
	return t4dx_config_parse(text, strlen(text), c, msg, sizeof(msg));
}

/* The text is accepted; returns the resulting config (from defaults). */
static struct t4dx_config ok(const char *text)
{
	struct t4dx_config c;
	t4dx_config_defaults(&c);
	int rc = parse(text, &c);
	if (rc) {
		fprintf(stderr, "rejected: %s\n  %s\n", text, msg);
		unit_failures++;
	}
	return c;
}

/* The text is refused with a message containing want, and cfg (holding
 * non-default values, to show they are kept) is untouched. */
static void bad(const char *text, const char *want)
{
	struct t4dx_config c, before;
	t4dx_config_defaults(&c);
	c.breaker.failure_threshold = 9;
	strcpy(c.fallback.rescue_dir, "/keep");
	memcpy(&before, &c, sizeof(c));
	int rc = parse(text, &c);
	if (rc != T4DX_ECONFIG || !strstr(msg, want)) {
		fprintf(stderr, "text: %s\n  rc %d, msg \"%s\", want \"%s\"\n",
			text, rc, msg, want);
		unit_failures++;
	}
	CHECK(memcmp(&c, &before, sizeof(c)) == 0);
}

static void test_defaults(void)
{
	struct t4dx_config d, c;
	t4dx_config_defaults(&d);
	c = ok("{}");
	CHECK(memcmp(&c, &d, sizeof(c)) == 0);
	c = ok(" \n\t{ \"breaker\" : { } , \"limits\":{}}\r\n");
	CHECK(memcmp(&c, &d, sizeof(c)) == 0);
	/* only what is named changes; earlier values are the base */
	t4dx_config_defaults(&c);
	c.wal.max_file_bytes = 8192;
	REQUIRE(parse("{\"breaker\":{\"failure_threshold\":7}}", &c) == 0);
	CHECK_EQ_INT(c.breaker.failure_threshold, 7);
	CHECK_EQ_INT(c.wal.max_file_bytes, 8192);
	CHECK_EQ_INT(c.breaker.success_threshold, 2);
	/* the length is honoured: the text need not end in NUL */
	t4dx_config_defaults(&c);
	CHECK(t4dx_config_parse("{}garbage", 2, &c, msg, sizeof(msg)) == 0);
	/* no message buffer */
	CHECK(t4dx_config_parse("[", 1, &c, NULL, 0) == T4DX_ECONFIG);
	CHECK(memcmp(&c, &d, sizeof(c)) == 0);
}

/* ---- every key ------------------------------------------------------- */

enum { I, N, S, B };

struct tk {
	const char *sec, *key;
	int kind;
	size_t off, size;
	const char *lo, *hi;            /* accepted */
	const char *below, *above;      /* refused (NULL: none) */
};

#define AT(s, k) #s, #k
#define OFF(s, k) offsetof(struct t4dx_config, s.k), \
	sizeof(((struct t4dx_config *)0)->s.k)
#define KI(s, k, lo, hi, below, above) \
	{ AT(s, k), I, OFF(s, k), lo, hi, below, above }
#define KN(s, k, lo, hi, below, above) \
	{ AT(s, k), N, OFF(s, k), lo, hi, below, above }

static const struct tk tks[] = {
	KI(breaker, failure_threshold, "1", "1000000", "0", "1000001"),
	KI(breaker, success_threshold, "1", "1000000", "0", "1000001"),
	KN(breaker, reset_timeout_s, "0.000001", "86400", "0", "86400.00001"),
	KI(wal, max_file_bytes, "4096", "1099511627776", "4095",
	   "1099511627777"),
	KI(wal, archive_max_bytes, "0", "1125899906842624", "-1",
	   "1125899906842625"),
	KI(wal, checkpoint_bytes, "65536", "1125899906842624", "65535",
	   "1125899906842625"),
	KI(wal, commit_interval_ms, "0", "60000", "-1", "60001"),
	KI(memtable, max_bytes, "4096", "1099511627776", "4095",
	   "1099511627777"),
	KI(memtable, max_items, "1", "100000000", "0", "100000001"),
	KI(fallback, max_items, "1", "10000000", "0", "10000001"),
	KI(fallback, cache_bytes, "0", "1099511627776", "-1",
	   "1099511627777"),
	KI(fallback, max_queue, "1", "10000000", "0", "10000001"),
	KI(fallback, max_queue_bytes, "65536", "1099511627776", "65535",
	   "1099511627777"),
	KI(fallback, drain_batch, "1", "100000", "0", "100001"),
	{ AT(fallback, policy), S, OFF(fallback, policy), "\"queue\"",
	  "\"reject\"", "\"Queue\"", "\"\"" },
	{ AT(fallback, rescue_dir), S, OFF(fallback, rescue_dir), "\"\"",
	  "\"/var/lib/t4dx rescue\"", "\"rel/dir\"", "\"./x\"" },
	{ AT(fallback, rescue_fallback), B, OFF(fallback, rescue_fallback),
	  "false", "true", "0", "\"true\"" },
	KN(health, interval_s, "0.000001", "86400", "0", "86400.00001"),
	KN(health, timeout_s, "0.000001", "3600", "0.0", "3600.0000001"),
	KI(health, alert_threshold, "1", "1000000", "0", "1000001"),
	KI(health, verify_bytes, "4096", "1099511627776", "4095",
	   "1099511627777"),
	{ AT(health, verify_at_start), B, OFF(health, verify_at_start),
	  "false", "true", "1", "\"false\"" },
	KN(compaction, nrem_kappa_boost, "0", "1", "-0.000001", "1.0000001"),
	KN(compaction, prune_min_kappa, "0", "1", "-1e-300", "1.0000001"),
	KN(compaction, prune_max_importance, "0", "1", "-0.000001", "1.01"),
	KN(compaction, prune_max_age_s, "0", "1e12", "-1", "1000000000000.001"),
	KI(limits, max_item_bytes, "1", "1073741824", "0", "1073741825"),
	KI(vector, dim, "1", "4096", "0", "4097"),
	{ AT(vector, embedder), S, OFF(vector, embedder), "\"off\"",
	  "\"builtin\"", "\"Builtin\"", "\"\"" },
	KN(vector, timeout_s, "0.000001", "3600", "0", "3600.0000001"),
	KN(vector, start_timeout_s, "0.000001", "3600", "0", "3600.0000001"),
	KN(vector, defer_s, "0", "3600", "-0.000001", "3600.0000001"),
	KI(vector, index_m, "2", "128", "1", "129"),
	KI(vector, ef_construction, "1", "65536", "0", "65537"),
	KI(vector, ef_search, "1", "65536", "0", "65537"),
	KI(vector, index_min_items, "1", "4294967295", "0", "4294967296"),
	KN(vector, min_recall, "0", "1.01", "-0.000001", "1.0100001"),
};
#define NTK (sizeof(tks) / sizeof(*tks))

static char *doc(char *out, const struct tk *k, const char *value)
{
	/* an item of the largest size needs a write buffer budget as big */
	const char *with = strcmp(k->key, "max_item_bytes") ? "" :
			   "\"write_buffer_bytes\": 1073741824, ";
	snprintf(out, 8192, "{\"%s\": {%s\"%s\": %s}}", k->sec, with, k->key,
		 value);
	return out;
}

/* The field holds the value the JSON text stands for. */
static bool holds(const struct t4dx_config *c, const struct tk *k,
		  const char *value)
{
	const char *f = (const char *)c + k->off;
	if (k->kind == S) {
		size_t len = strlen(value) - 2;
		return strlen(f) == len && !memcmp(f, value + 1, len);
	}
	if (k->kind == N) {
		double d;
		memcpy(&d, f, sizeof(d));
		return d == strtod(value, NULL);
	}
	if (k->kind == B) {
		bool b;
		memcpy(&b, f, sizeof(b));
		return b == !strcmp(value, "true");
	}
	uint64_t want = strtoull(value, NULL, 10), got;
	if (k->size == sizeof(unsigned)) {
		unsigned u;
		memcpy(&u, f, sizeof(u));
		got = u;
	} else {
		memcpy(&got, f, sizeof(got));
	}
	return got == want;
}

static void int_msg(char want[256], const struct tk *k, const char *got)
{
	snprintf(want, 256, "%s.%s: must be an integer from %s to %s, got %s",
		 k->sec, k->key, k->lo, k->hi, got);
}

static void test_bounds(void)
{
	char text[8192], want[256];
	for (size_t i = 0; i < NTK; i++) {
		const struct tk *k = &tks[i];
		struct t4dx_config c = ok(doc(text, k, k->lo));
		CHECK(holds(&c, k, k->lo));
		c = ok(doc(text, k, k->hi));
		CHECK(holds(&c, k, k->hi));
		const char *out[2] = { k->below, k->above };
		for (int j = 0; j < 2; j++) {
			if (k->kind == I)
				int_msg(want, k, out[j]);
			else
				snprintf(want, sizeof(want), "%s.%s: must ",
					 k->sec, k->key);
			bad(doc(text, k, out[j]), want);
			if (k->kind == N) {
				snprintf(want, sizeof(want), ", got %s",
					 out[j]);
				bad(text, want);
			}
		}
	}
	/* the exact wording of each kind */
	bad("{\"breaker\":{\"failure_threshold\":0}}",
	    "breaker.failure_threshold: must be an integer from 1 to "
	    "1000000, got 0");
	CHECK(!strcmp(msg, "breaker.failure_threshold: must be an integer "
		      "from 1 to 1000000, got 0"));
	bad("{\"breaker\":{\"reset_timeout_s\":0}}", "reset_timeout_s");
	CHECK(!strcmp(msg, "breaker.reset_timeout_s: must be a number greater "
		      "than 0 and at most 86400, got 0"));
	bad("{\"compaction\":{\"prune_max_age_s\":-1}}", "prune_max_age_s");
	CHECK(!strcmp(msg, "compaction.prune_max_age_s: must be a number from "
		      "0 to 1000000000000, got -1"));
	bad("{\"fallback\":{\"policy\":\"drop\\n\"}}", "policy");
	CHECK(!strcmp(msg, "fallback.policy: must be \"queue\" or \"reject\", "
		      "got \"drop?\""));
	bad("{\"vector\":{\"embedder\":\"bert\"}}", "embedder");
	CHECK(!strcmp(msg, "vector.embedder: must be \"builtin\", \"command\" "
		      "or \"off\", got \"bert\""));
	/* fractions and integers both are numbers */
	struct t4dx_config c = ok("{\"breaker\":{\"reset_timeout_s\":0.5},"
				  "\"health\":{\"timeout_s\":2}}");
	CHECK(c.breaker.reset_timeout_s == 0.5);
	CHECK(c.health.timeout_s == 2);
	c = ok("{\"compaction\":{\"prune_max_age_s\":-0.0}}");
	CHECK(c.compaction.prune_max_age_s == 0 &&
	      !signbit(c.compaction.prune_max_age_s));
	/* not representable in JSON, but a huge literal overflows to inf */
	bad("{\"health\":{\"interval_s\":1e400}}",
	    "health.interval_s: must be a number greater than 0 and at most "
	    "86400, got 1e400");
	bad("{\"wal\":{\"max_file_bytes\":18446744073709551616}}",
	    "wal.max_file_bytes: must be an integer from 4096 to "
	    "1099511627776, got a huge integer");
	bad("{\"wal\":{\"max_file_bytes\":18446744073709551615}}",
	    "got a huge integer");
	bad("{\"wal\":{\"max_file_bytes\":9223372036854775808}}",
	    "got 9223372036854775808");
	bad("{\"wal\":{\"max_file_bytes\":-9223372036854775809}}",
	    "got a huge negative integer");
	bad("{\"wal\":{\"max_file_bytes\":-4096}}", "got -4096");
}

static void test_strings(void)
{
	char text[8192], path[4200];
	memset(path, 'a', sizeof(path));
	path[0] = '/';
	/* rescue_dir holds up to 4095 bytes and its NUL */
	snprintf(text, sizeof(text),
		 "{\"fallback\":{\"rescue_dir\":\"%.4095s\"}}", path);
	struct t4dx_config c = ok(text);
	CHECK_EQ_INT(strlen(c.fallback.rescue_dir), 4095);
	snprintf(text, sizeof(text),
		 "{\"fallback\":{\"rescue_dir\":\"%.4096s\"}}", path);
	bad(text, "fallback.rescue_dir: must be shorter than 4096 bytes");
	bad("{\"fallback\":{\"rescue_dir\":\"/a\\u0000b\"}}",
	    "fallback.rescue_dir: must not contain a NUL character");
	bad("{\"fallback\":{\"policy\":\"queue\\u0000\"}}",
	    "fallback.policy: must not contain a NUL character");
	bad("{\"fallback\":{\"rescue_dir\":\"x\"}}",
	    "fallback.rescue_dir: must be \"\" or an absolute path");
	c = ok("{\"fallback\":{\"rescue_dir\":\"/r\\u00e9\\\"s\\\\cue\"}}");
	CHECK(!strcmp(c.fallback.rescue_dir, "/r\xc3\xa9\"s\\cue"));
	/* a shorter value leaves no trace of the longer one */
	c = ok("{\"fallback\":{\"policy\":\"reject\"}}");
	REQUIRE(parse("{\"fallback\":{\"policy\":\"queue\"}}", &c) == 0);
	struct t4dx_config d;
	t4dx_config_defaults(&d);
	CHECK(memcmp(&c, &d, sizeof(c)) == 0);
}

/* vector.command: the argv of a program, kept as its JSON array. */
static void test_command(void)
{
	struct t4dx_config c = ok("{\"vector\":{\"embedder\":\"command\","
				  "\"command\":[\"/usr/bin/emb\", \"-x\", "
				  "\"a b/c\", \"\"]}}");
	CHECK(!strcmp(c.vector.embedder, "command"));
	CHECK(!strcmp(c.vector.command, "[\"/usr/bin/emb\",\"-x\",\"a b/c\",\"\"]"));
	c = ok("{\"vector\":{\"command\":[]}}");
	CHECK(!strcmp(c.vector.command, "[]"));
	bad("{\"vector\":{\"embedder\":\"command\"}}",
	    "vector.command: must name a program when vector.embedder is "
	    "\"command\"");
	bad("{\"vector\":{\"embedder\":\"command\",\"command\":[]}}",
	    "vector.command: must name a program");
	bad("{\"vector\":{\"command\":\"emb -x\"}}",
	    "vector.command: must be an array of strings (the program, then "
	    "its arguments), got a string");
	bad("{\"vector\":{\"command\":[\"emb\",1]}}",
	    "vector.command: must be an array of strings, got 1 at 1");
	bad("{\"vector\":{\"command\":[\"\"]}}",
	    "vector.command: the program's name must not be empty");
	bad("{\"vector\":{\"command\":[\"a\\u0000b\"]}}",
	    "vector.command: must not contain a NUL character");
	char text[8192], arg[5000];
	memset(arg, 'a', sizeof(arg));
	snprintf(text, sizeof(text), "{\"vector\":{\"command\":[\"%.4091s\"]}}",
		 arg);
	c = ok(text);
	CHECK_EQ_INT(strlen(c.vector.command), 4095);
	snprintf(text, sizeof(text), "{\"vector\":{\"command\":[\"%.4092s\"]}}",
		 arg);
	bad(text, "vector.command: must be shorter than 4096 bytes as JSON");
	/* it renders back as the array */
	c = ok("{\"vector\":{\"embedder\":\"command\",\"command\":[\"e\",\"1\"],"
	       "\"timeout_s\":0.5}}");
	struct t4dx_buf b = { 0 };
	REQUIRE(t4dx_config_render(&c, &b) == 0);
	REQUIRE(t4dx_buf_add(&b, "", 1) == 0);
	CHECK(strstr((const char *)b.p, "\"vector\":{\"dim\":256,\"embedder\":"
		     "\"command\",\"command\":[\"e\",\"1\"],\"timeout_s\":0.5,"));
	t4dx_buf_free(&b);
}

static void test_types(void)
{
	static const char *wrong[] = { "\"5\"", "true", "false", "[]", "[1]",
				       "{}", "null" };
	static const char *said[] = { "got a string", "got true",
				      "got false", "got an array",
				      "got an array", "got an object",
				      "got null" };
	char text[8192], want[256];
	for (size_t i = 0; i < NTK; i++) {
		const struct tk *k = &tks[i];
		for (size_t j = 0; j < sizeof(wrong) / sizeof(*wrong); j++) {
			if ((k->kind == S && j == 0) ||
			    (k->kind == B && (j == 1 || j == 2)))
				continue;
			snprintf(want, sizeof(want), "%s.%s: must be", k->sec,
				 k->key);
			bad(doc(text, k, wrong[j]), want);
			bad(text, said[j]);
		}
		if (k->kind == I) {
			/* an integer key takes integer literals only */
			static const char *dbl[] = { "5.5", "5.0", "1e3",
						     "100000000.0" };
			for (size_t j = 0; j < 4; j++) {
				int_msg(want, k, dbl[j]);
				bad(doc(text, k, dbl[j]), want);
			}
		}
		if (k->kind == S) {
			snprintf(want, sizeof(want), "%s.%s: must be a string, "
				 "got 1", k->sec, k->key);
			bad(doc(text, k, "1"), want);
		}
		if (k->kind == B) {
			snprintf(want, sizeof(want), "%s.%s: must be true or "
				 "false, got 1", k->sec, k->key);
			bad(doc(text, k, "1"), want);
		}
	}
}

static void test_names(void)
{
	bad("{\"bogus\":{}}", "unknown section bogus");
	CHECK(!strcmp(msg, "unknown section bogus"));
	bad("{\"breaker\":{\"foo\":1}}", "unknown key breaker.foo");
	CHECK(!strcmp(msg, "unknown key breaker.foo"));
	bad("{\"Breaker\":{}}", "unknown section Breaker");
	bad("{\"breaker\":{\"max_items\":1}}", "unknown key breaker.max_items");
	bad("{\"breaker\":{\"failure_threshold \":1}}",
	    "unknown key breaker.failure_threshold ");
	bad("{\"a\\nb\":1}", "unknown section a?b");
	bad("{\"breaker\":5}", "breaker: must be an object, got 5");
	bad("{\"wal\":[]}", "wal: must be an object, got an array");
	bad("{\"limits\":null}", "limits: must be an object, got null");
	bad("{\"health\":\"x\"}", "health: must be an object, got a string");
	/* the same key name in two sections is fine */
	struct t4dx_config c = ok("{\"memtable\":{\"max_items\":5},"
				  "\"fallback\":{\"max_items\":6}}");
	CHECK_EQ_INT(c.memtable.max_items, 5);
	CHECK_EQ_INT(c.fallback.max_items, 6);
	/* an escaped key is the key it decodes to */
	c = ok("{\"br\\u0065aker\":{\"failure_thr\\u0065shold\":8}}");
	CHECK_EQ_INT(c.breaker.failure_threshold, 8);
	/* all or nothing: good keys before the bad one are not applied */
	bad("{\"breaker\":{\"success_threshold\":7},\"wal\":"
	    "{\"max_file_bytes\":1}}", "wal.max_file_bytes:");
	bad("{\"limits\":{\"max_item_bytes\":5},\"x\":{}}",
	    "unknown section x");
}

static void test_duplicates(void)
{
	bad("{\"breaker\":{\"failure_threshold\":1,\"failure_threshold\":2}}",
	    "duplicate key breaker.failure_threshold at line 1");
	bad("{\"breaker\":{\"failure_threshold\":1,\n"
	    "\"failure_thr\\u0065shold\":1}}",
	    "duplicate key breaker.failure_threshold at line 2");
	bad("{\"wal\":{},\n\n\"wal\":{}}", "duplicate section wal at line 3");
	bad("{\"fallback\":{\"policy\":\"queue\"},\"fallback\":{}}",
	    "duplicate section fallback");
}

static void test_not_json(void)
{
	static const char *texts[] = {
		"", "   ", "{", "{\"breaker\":}", "{\"breaker\":{},}",
		"{'breaker':{}}", "{\"breaker\":{\"failure_threshold\":'5'}}",
		"{\"breaker\":{\"reset_timeout_s\":1.}}",
		"{\"breaker\":{\"reset_timeout_s\":.5}}",
		"{\"breaker\":{\"reset_timeout_s\":NaN}}",
		"{\"breaker\":{\"reset_timeout_s\":Infinity}}",
		"{\"breaker\":{\"reset_timeout_s\":-Infinity}}",
		"{\"breaker\":{\"failure_threshold\":05}}",
		"{\"breaker\":{\"failure_threshold\":+5}}",
		"{\"breaker\":{\"failure_threshold\":0x5}}",
		"{\"fallback\":{\"policy\":\"a\tb\"}}",
		"{\"fallback\":{\"policy\":\"\\x\"}}",
		"{\"fallback\":{\"policy\":\"\xff\"}}",
		"\xef\xbb\xbf{}", "{/* c */}", "{} // c", "{\f}",
		"{\"breaker\":{\"failure_threshold\":True}}",
		"{\"a\":[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]}",
		"{\"a\\u0000b\":{}}",
	};
	for (size_t i = 0; i < sizeof(texts) / sizeof(*texts); i++)
		bad(texts[i], "not valid JSON: ");
	bad("{\n\n  \"breaker\": tru}", "at line 3");
	bad("{\n\"a\":\"\n\"}", "control character in a string at line 2");
	bad("{\"a\":1.}", "bad number at line 1");
	/* a NUL byte inside the given length */
	struct t4dx_config c;
	t4dx_config_defaults(&c);
	CHECK(t4dx_config_parse("{}\0", 3, &c, msg, sizeof(msg)) ==
	      T4DX_ECONFIG);
	CHECK(strstr(msg, "NUL") != NULL);
}

static void test_trailing(void)
{
	bad("{} x", "not valid JSON: trailing characters after the object at "
	    "line 1");
	bad("{}{}", "trailing characters");
	bad("{}\n\n]", "trailing characters after the object at line 3");
	bad("{\"breaker\":{}} {\"wal\":{}}", "trailing characters");
	ok("{}\n\t \r\n");
}

static void test_top_level(void)
{
	bad("[]", "the top level must be a JSON object, got an array");
	bad("[{}]", "got an array");
	bad("1", "got 1");
	bad("\"s\"", "got a string");
	bad("null", "got null");
	bad("true", "got true");
}

/* ---- render ---------------------------------------------------------- */

static void roundtrip(const struct t4dx_config *c)
{
	struct t4dx_buf b = { 0 };
	REQUIRE(t4dx_config_render(c, &b) == 0);
	REQUIRE(b.len > 0);
	CHECK(b.p[b.len - 1] == '\n');
	CHECK(memchr(b.p, '\n', b.len - 1) == NULL);     /* one line */
	struct t4dx_config back;
	t4dx_config_defaults(&back);
	back.breaker.failure_threshold = 999;   /* every key is written */
	int rc = t4dx_config_parse((const char *)b.p, b.len, &back, msg,
				   sizeof(msg));
	CHECK_EQ_INT(rc, 0);
	if (rc)
		fprintf(stderr, "%.*s%s\n", (int)b.len, b.p, msg);
	CHECK(memcmp(&back, c, sizeof(back)) == 0);
	t4dx_buf_free(&b);
}

static void test_render(void)
{
	struct t4dx_config c;
	t4dx_config_defaults(&c);
	struct t4dx_buf b = { 0 };
	REQUIRE(t4dx_config_render(&c, &b) == 0);
	REQUIRE(t4dx_buf_add(&b, "", 1) == 0);
	const char *want =
		"{\"breaker\":{\"failure_threshold\":5,\"success_threshold\":2,"
		"\"reset_timeout_s\":60},"
		"\"wal\":{\"max_file_bytes\":67108864,"
		"\"archive_max_bytes\":268435456,"
		"\"checkpoint_bytes\":67108864,\"commit_interval_ms\":10},"
		"\"memtable\":{\"max_bytes\":67108864,\"max_items\":10000},"
		"\"fallback\":{\"max_items\":1000,\"cache_bytes\":67108864,\"max_queue\":10000,"
		"\"max_queue_bytes\":67108864,\"drain_batch\":100,\"policy\":\"queue\",\"rescue_dir\":\"\","
		"\"rescue_fallback\":true},"
		"\"health\":{\"interval_s\":30,\"timeout_s\":5,"
		"\"alert_threshold\":3,\"verify_bytes\":8388608,"
		"\"verify_at_start\":false},"
		"\"compaction\":{\"nrem_kappa_boost\":0.05,"
		"\"prune_min_kappa\":0.05,\"prune_max_importance\":0.1,"
		"\"prune_max_age_s\":0},"
		"\"limits\":{\"max_item_bytes\":16777216,"
		"\"write_buffer_bytes\":268435456},"
		"\"vector\":{\"dim\":256,\"embedder\":\"builtin\","
		"\"command\":[],\"timeout_s\":10,\"start_timeout_s\":60,"
		"\"defer_s\":30,"
		"\"index_m\":32,\"ef_construction\":100,\"ef_search\":256,"
		"\"index_min_items\":1000,\"min_recall\":0.99}}\n";
	CHECK(!strcmp((const char *)b.p, want));
	if (strcmp((const char *)b.p, want))
		fprintf(stderr, "got  %swant %s", b.p, want);
	t4dx_buf_free(&b);
	roundtrip(&c);

	/* strings escaped as json-c escapes the other .ctl files: a newline
	 * is \n, a slash stays as it is */
	struct t4dx_config e = c;
	strcpy(e.fallback.rescue_dir, "/tmp/a\nb\t\x01\"c\\");
	REQUIRE(t4dx_config_render(&e, &b) == 0);
	REQUIRE(t4dx_buf_add(&b, "", 1) == 0);
	CHECK(strstr((const char *)b.p,
		     "\"rescue_dir\":\"/tmp/a\\nb\\t\\u0001\\\"c\\\\\"") != NULL);
	if (!strstr((const char *)b.p, "/tmp/a\\nb"))
		fprintf(stderr, "got  %s", b.p);
	t4dx_buf_free(&b);

	/* every field away from its default, awkward doubles and strings */
	c.breaker.failure_threshold = 1000000;
	c.breaker.success_threshold = 1;
	c.breaker.reset_timeout_s = 1.0 / 3;
	c.wal.max_file_bytes = UINT64_C(1) << 40;
	c.wal.archive_max_bytes = 0;
	c.memtable.max_bytes = 4097;
	c.memtable.max_items = 100000000;
	c.fallback.max_items = 1;
	c.fallback.max_queue = 10000000;
	c.fallback.drain_batch = 99999;
	strcpy(c.fallback.policy, "reject");
	strcpy(c.fallback.rescue_dir, "/tmp/a \"b\"\\c\nd\x01\x1f\xc3\xa9/");
	c.health.interval_s = 86400;
	c.health.timeout_s = 5e-324;
	c.health.alert_threshold = 77;
	c.compaction.nrem_kappa_boost = 0.1 + 0.2;
	c.compaction.prune_min_kappa = 1;
	c.compaction.prune_max_importance = 1e-300;
	c.compaction.prune_max_age_s = 123456789.123456789;
	c.limits.max_item_bytes = T4DX_ITEM_BYTES_MAX;
	c.limits.write_buffer_bytes = T4DX_ITEM_BYTES_MAX;
	roundtrip(&c);

	srandom(4);
	for (int i = 0; i < 2000; i++) {
		c.compaction.nrem_kappa_boost = (double)random() / RAND_MAX;
		c.compaction.prune_max_age_s =
			(double)random() / RAND_MAX * 1e12;
		c.breaker.reset_timeout_s = (double)random() / RAND_MAX * 86400
					    + 1e-6;
		roundtrip(&c);
	}

	/* A decimal-comma locale must not leak into the JSON. */
	static const char *comma[] = { "de_DE.UTF-8", "de_DE.utf8",
				       "fr_FR.UTF-8", "fr_FR.utf8" };
	for (size_t i = 0; i < sizeof(comma) / sizeof(*comma); i++) {
		if (!setlocale(LC_NUMERIC, comma[i]))
			continue;
		roundtrip(&c);
		REQUIRE(t4dx_config_render(&c, &b) == 0);
		REQUIRE(t4dx_buf_add(&b, "", 1) == 0);
		CHECK(strstr((const char *)b.p, "\"nrem_kappa_boost\":0."));
		t4dx_buf_free(&b);
		setlocale(LC_NUMERIC, "C");
		return;
	}
	fprintf(stderr, "  (no decimal-comma locale installed: not checked)\n");
}

/* ---- load ------------------------------------------------------------ */

static char dir[64];

static const char *file(const char *name, const char *text, size_t len)
{
	static char path[128];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	REQUIRE(fd >= 0);
	REQUIRE(write(fd, text, len) == (ssize_t)len);
	close(fd);
	return path;
}

static int load(const char *path, struct t4dx_config *c)
{
	t4dx_config_defaults(c);
	msg[0] = '\0';
	return t4dx_config_load(path, c, msg, sizeof(msg));
}

static bool starts(const char *s, const char *prefix)
{
	return !strncmp(s, prefix, strlen(prefix));
}

static void test_load(void)
{
	strcpy(dir, "/tmp/t4dx-config-XXXXXX");
	REQUIRE(mkdtemp(dir));
	struct t4dx_config c, d;
	t4dx_config_defaults(&d);
	char want[512];

	const char *t = "{\"health\":{\"interval_s\":2.5}}\n";
	const char *p = file("good.json", t, strlen(t));
	CHECK_EQ_INT(load(p, &c), 0);
	CHECK(c.health.interval_s == 2.5);

	p = file("bad.json", "{\"breaker\":{\"failure_threshold\":0}}", 35);
	CHECK_EQ_INT(load(p, &c), T4DX_ECONFIG);
	snprintf(want, sizeof(want), "%s: breaker.failure_threshold: must be "
		 "an integer from 1 to 1000000, got 0", p);
	CHECK(!strcmp(msg, want));
	CHECK(memcmp(&c, &d, sizeof(c)) == 0);

	p = file("empty.json", "", 0);
	CHECK_EQ_INT(load(p, &c), T4DX_ECONFIG);
	snprintf(want, sizeof(want), "%s: empty file", p);
	CHECK(!strcmp(msg, want));

	/* exactly 1 MiB is allowed, one byte more is not */
	size_t mib = 1 << 20;
	char *big = malloc(mib + 1);
	REQUIRE(big);
	memset(big, ' ', mib + 1);
	big[0] = '{';
	big[mib - 1] = '}';
	p = file("mib.json", big, mib);
	CHECK_EQ_INT(load(p, &c), 0);
	big[mib - 1] = ' ';
	big[mib] = '}';
	p = file("big.json", big, mib + 1);
	CHECK_EQ_INT(load(p, &c), T4DX_ECONFIG);
	CHECK(starts(msg, p) && strstr(msg, ": larger than 1048576 bytes"));
	free(big);

	snprintf(want, sizeof(want), "%s/missing.json", dir);
	CHECK_EQ_INT(load(want, &c), ENOENT);
	CHECK(starts(msg, want) && strstr(msg, ": No such file or directory"));
	CHECK_EQ_INT(load(dir, &c), EISDIR);
	CHECK(starts(msg, dir));
	CHECK(memcmp(&c, &d, sizeof(c)) == 0);

	/* clean up */
	static const char *names[] = { "good.json", "bad.json", "empty.json",
				       "mib.json", "big.json" };
	for (size_t i = 0; i < 5; i++) {
		snprintf(want, sizeof(want), "%s/%s", dir, names[i]);
		unlink(want);
	}
	rmdir(dir);
}

int main(void)
{
	RUN(test_defaults);
	RUN(test_bounds);
	RUN(test_strings);
	RUN(test_command);
	RUN(test_types);
	RUN(test_names);
	RUN(test_duplicates);
	RUN(test_not_json);
	RUN(test_trailing);
	RUN(test_top_level);
	RUN(test_render);
	RUN(test_load);
	UNIT_DONE();
}
