/*
 * unit.h - a minimal harness for the C unit tests.  Each test program runs
 * its checks in order; CHECK records a failure and goes on, REQUIRE stops
 * the program.  Exit status: 0 all passed, 1 any failure (automake's
 * driver), 77 skipped.
 */
#ifndef T4DX_UNIT_H
#define T4DX_UNIT_H

#include <stdio.h>
#include <stdlib.h>

static int unit_failures;

#define CHECK(cond) do { if (!(cond)) { \
	fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
	unit_failures++; } } while (0)
#define REQUIRE(cond) do { if (!(cond)) { \
	fprintf(stderr, "%s:%d: REQUIRE failed: %s\n", __FILE__, __LINE__, #cond); \
	exit(1); } } while (0)
#define CHECK_EQ_INT(a, b) do { long long _a = (long long)(a), _b = (long long)(b); \
	if (_a != _b) { fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", \
	__FILE__, __LINE__, #a, #b, _a, _b); unit_failures++; } } while (0)
/* Reproducible pseudo-random numbers in [-1, 1) from *state. */
static inline float unit_rnd(unsigned *state)
{
	*state = *state * 1103515245u + 12345u;
	return (float)((*state >> 8) & 0xffff) / 32768.0f - 1.0f;
}

#define RUN(fn) do { fprintf(stderr, "-- %s\n", #fn); fn(); } while (0)
#define UNIT_DONE() do { if (unit_failures) { \
	fprintf(stderr, "%d check(s) failed\n", unit_failures); } \
	return unit_failures ? 1 : 0; } while (0)

#endif
